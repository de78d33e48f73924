import type { ReadCut } from '../../../sandbox/host/driver/archive-read.js';
import type { SandboxDriver } from '../../../sandbox/host/driver/types.js';
import type { FileRef } from '../../contracts/protocol/inbound.js';
import type { Turn } from '../../shared/queue/conversation-store.js';
import type { BlobStore } from '../../shared/stores/blob-store.js';
import type { OutboxLedger } from './outbox-ledger.js';

/**
 * Moves files between chat and sandbox: attachments of the turn's messages into /workspace/inbox
 * before the turn, and what the agent put in /workspace/outbox during the turn back as reply files.
 * Both copies go through the container engine, from outside the agent's control.
 */
export async function deliverInbox(driver: SandboxDriver, blobs: BlobStore, turn: Turn): Promise<string[]> {
  const refs = turn.messages.flatMap((m) => m.files);
  const files: { name: string; bytes: Buffer }[] = [];
  const missing: string[] = [];
  for (const ref of refs) {
    const bytes = await blobs.get(ref.blobKey);
    if (bytes) files.push({ name: ref.name, bytes });
    else missing.push(ref.name);
  }
  await driver.putInbox(turn.conversation, files);
  return missing;
}

export interface CollectedOutbox {
  files: FileRef[];
  /** Files left out, named with the reason, for the reply text. */
  skipped: string[];
  /** The read overran its budget (or was stopped) and was cut there. */
  cut?: ReadCut;
}

export async function collectOutbox(
  stores: { driver: SandboxDriver; blobs: BlobStore; ledger: OutboxLedger },
  turn: Turn,
  sinceMs: number,
  maxBytes: number,
): Promise<CollectedOutbox> {
  const outbox = await stores.driver.readOutbox(turn.conversation, sinceMs, maxBytes);
  const files: FileRef[] = [];
  for (const file of await stores.ledger.takeChanged(turn.conversation, outbox.files)) {
    files.push({ name: file.name, size: file.bytes.length, blobKey: await stores.blobs.put(file.bytes) });
  }
  return { files, skipped: outbox.skipped, ...(outbox.cut ? { cut: outbox.cut } : {}) };
}

/** The reply text with a note on outbox files that could not be handed back. */
export function withSkippedNote(text: string, skipped: string[]): string {
  return skipped.length === 0 ? text : `${text}\n\n(Not attached: ${skipped.join(', ')}.)`;
}
