import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import type { SandboxDriver } from '../../../sandbox/host/driver/types.js';
import type { ConversationId } from '../../contracts/conversation/id.js';
import type { FileRef } from '../../contracts/protocol/inbound.js';
import type { BlobStore } from '../../shared/stores/blob-store.js';
import { type DelegationResult, readDelegationResult } from './delegation-outbound.js';

export type WaitOutcome =
  | { kind: 'result'; result: DelegationResult }
  /** The delegation's deadline passed. */
  | { kind: 'timeout' }
  /** The delegating turn ended first. */
  | { kind: 'cancelled' };

/**
 * Waits for a sub-agent's result, which the worker running it stores in Redis (any worker may run it).
 * Polling keeps the parent's worker on its one shared connection; a result is a few hundred ms late at most.
 */
export async function awaitResult(
  redis: Redis,
  instance: string,
  child: ConversationId,
  deadline: number,
  signal: AbortSignal,
  pollMs = 300,
): Promise<WaitOutcome> {
  for (;;) {
    if (signal.aborted) return { kind: 'cancelled' };
    const result = await readDelegationResult(redis, instance, child);
    if (result) return { kind: 'result', result };
    const left = deadline - Date.now();
    if (left <= 0) return { kind: 'timeout' };
    try {
      await sleep(Math.min(pollMs, left), undefined, { signal });
    } catch {
      return { kind: 'cancelled' };
    }
  }
}

/**
 * Copies a sub-agent's outbox files into its parent's workspace, under subagents/<label>/, through the
 * engine from outside both containers. Returns the paths written (relative to /workspace).
 */
export async function returnFiles(
  deps: { driver: SandboxDriver; blobs: BlobStore },
  parent: ConversationId,
  label: string,
  files: readonly FileRef[],
): Promise<string[]> {
  const written: string[] = [];
  for (const file of files) {
    const bytes = await deps.blobs.get(file.blobKey);
    if (bytes === null) continue;
    const path = `subagents/${label}/${file.name}`;
    await deps.driver.putWorkspaceFile(parent, path, bytes);
    written.push(path);
  }
  return written;
}
