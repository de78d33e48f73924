import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type Dockerode from 'dockerode';
import type { RuntimeToWorker } from '../../../src/contracts/protocol/agent.js';
import type { LineResult } from '../../../src/contracts/protocol/lines.js';
import { ensureQuotaMount } from './disk-quota.js';
import {
  newPoolId,
  type PooledSandbox,
  pooledContainerSpec,
  poolNames,
  removePooledSandbox,
  volumeData,
} from './docker-pool.js';
import { type AttachedSession, attachRuntime } from './docker-session.js';
import type { QuotaPaths, SandboxLimits } from './docker-spec.js';
import { putWorkspaceFile } from './workspace-files.js';
import { snapshotWorkspace } from './workspace-snapshot.js';

/** A pooled sandbox whose runtime has not answered by then is given up (and removed). */
const READY_TIMEOUT_MS = 60_000;

/**
 * Creates and starts one pooled sandbox, puts the seed files into its /workspace (the canary), waits
 * until its runtime answers, and takes the snapshot its first turn starts from: everything a new
 * conversation would otherwise wait for. With size caps its images are made first, the seed files
 * formatted into the workspace (as for a new conversation's). Removed again if any step fails.
 */
export async function createPooledSandbox(
  engine: { docker: Dockerode; limits: SandboxLimits; maxLineBytes: number },
  owner: string,
  seed: { path: string; bytes: Buffer }[],
): Promise<PooledSandbox> {
  const { docker, limits } = engine;
  const id = newPoolId();
  const names = poolNames(limits.instance, id);
  const diskRoot = pooledDiskRoot(limits);
  // The container first (onto the empty mount points), then its images: a worker that dies in
  // between leaves a labelled pooled container, whose removal (orphans) takes the images too.
  const quota = diskRoot ? await mountPoints(diskRoot, names) : undefined;
  await docker.createContainer(pooledContainerSpec(limits, owner, id, quota));
  try {
    if (quota) await pooledImages(limits, names, seed);
    const container = docker.getContainer(names.container);
    await container.start();
    if (!quota) for (const file of seed) await putWorkspaceFile(container, file.path, file.bytes);
    await waitReady(engine, container);
    const info = await container.inspect();
    const volume = (target: string) =>
      info.Mounts.find((m) => m.Destination === target && m.Type === 'volume')?.Name ?? '';
    const workspaceVolume = quota ? names.workspaceVolume : volume('/workspace');
    const sessionVolume = quota ? names.sessionVolume : volume('/session');
    return {
      name: names.container,
      containerId: info.Id,
      owner,
      workspaceVolume,
      sessionVolume,
      workspaceData: quota?.workspace ?? (await volumeData(docker, workspaceVolume)),
      sessionData: quota?.session ?? (await volumeData(docker, sessionVolume)),
      snapshot: await snapshotWorkspace(container),
      ...(quota ? { capped: true } : {}),
    };
  } catch (error) {
    await removePooledSandbox(docker, limits.instance, names.container, diskRoot).catch(() => undefined);
    throw error;
  }
}

/** Where the pool's capped images live: caps on the worker's own host (the micro-VM's guest: no pool). */
export function pooledDiskRoot(limits: SandboxLimits): string | undefined {
  return limits.disk && !limits.disk.onEngine ? limits.disk.root : undefined;
}

type ImageNames = { workspaceVolume: string; sessionVolume: string };

/** Where the pooled sandbox's images will be mounted (made empty now: a bind source must exist). */
async function mountPoints(root: string, names: ImageNames): Promise<QuotaPaths> {
  const [workspace, session] = [names.workspaceVolume, names.sessionVolume].map((name) =>
    join(resolve(root), 'mnt', name),
  ) as [string, string];
  for (const path of [workspace, session]) await mkdir(path, { recursive: true, mode: 0o700 });
  return { workspace, session };
}

/** The pooled sandbox's own capped images, formatted (the workspace with `seed`) and mounted. */
async function pooledImages(
  limits: SandboxLimits,
  names: ImageNames,
  seed: { path: string; bytes: Buffer }[],
): Promise<void> {
  const disk = limits.disk as NonNullable<SandboxLimits['disk']>;
  const files = { files: async () => seed, planted: () => undefined };
  // Settled, not raced: a failure must not leave the other image being mounted after the clean-up.
  const made = await Promise.allSettled([
    ensureQuotaMount(disk.root, names.workspaceVolume, disk.workspaceMb, ['inbox', 'outbox'], files),
    ensureQuotaMount(disk.root, names.sessionVolume, disk.sessionMb),
  ]);
  const failed = made.find((m) => m.status === 'rejected');
  if (failed) throw failed.reason;
}

/** A turn nothing is saved from: it ends in a model error (see agent-turn.ts), leaving /session as it was. */
const WARM_UP = 'pool-warm-up';

/**
 * Attaches, says hello and runs the runtime through one turn answered with a model error (the turn's
 * end is the answer that it is ready): the runtime's turn path is then compiled, so the
 * conversation's first turn runs like any later one. A failed turn saves nothing and runs no tool.
 */
async function waitReady(
  engine: { docker: Dockerode; maxLineBytes: number },
  container: Dockerode.Container,
): Promise<void> {
  const session = await attachRuntime(
    engine.docker,
    container,
    // Only the protocol stream is used here; no conversation owns this sandbox yet.
    'web:sandbot-pool' as AttachedSession['conversation'],
    engine.maxLineBytes,
  );
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new Error(`the pooled sandbox's runtime did not answer within ${READY_TIMEOUT_MS / 1000} s`),
          ),
        READY_TIMEOUT_MS,
      );
      const off = session.onMessage((line: LineResult<RuntimeToWorker>) => {
        if (!line.ok) return;
        const message = line.value;
        if (message.type === 'model_request' && message.turnId === WARM_UP) {
          session.send({
            type: 'model_error',
            turnId: WARM_UP,
            requestId: message.requestId,
            message: 'warm-up',
          });
        } else if (message.type === 'turn_done' && message.turnId === WARM_UP) {
          clearTimeout(timer);
          off();
          resolve();
        }
      });
      session.onClose((reason) => {
        clearTimeout(timer);
        reject(new Error(`the pooled sandbox stopped before it was ready: ${reason}`));
      });
      // The runtime reads its stdin in order: the warm-up turn follows the hello (its `ready` is the
      // session's, not passed on).
      session.greet();
      session.send({
        type: 'turn',
        turnId: WARM_UP,
        messages: [{ user: 'sandbot', text: 'warm-up' }],
        limits: { toolTimeoutMs: 1000, toolOutputBytes: 1024 },
      });
    });
  } finally {
    await session.close();
  }
}
