import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { Check } from './readiness.js';

/**
 * Which sandbox layer each live worker checked and runs under, kept in Redis so `/readyz` on any gateway
 * reports the layers in force (not just what the gateway's own settings say). Each worker rewrites its
 * entry every REFRESH_MS; an entry older than STALE_MS belongs to a worker that is gone.
 */
const REFRESH_MS = 15_000;
const STALE_MS = 45_000;

export const layersKey = (instance: string) => `${instance}:layers`;

export const WorkerLayer = z.object({
  layer: z.enum(['container', 'gvisor', 'microvm']),
  runtime: z.string().optional(),
  /** What the start-up check saw (runtime, how it ran). */
  detail: z.string(),
  /** Why network grants cannot be served under this layer, when they cannot. */
  noNetwork: z.string().optional(),
  at: z.number(),
});
export type WorkerLayer = z.infer<typeof WorkerLayer>;

/** Publishes a worker's layer until the returned stop is called (which removes it). */
export function publishWorkerLayer(
  redis: Redis,
  instance: string,
  workerId: string,
  layer: Omit<WorkerLayer, 'at'>,
): () => Promise<void> {
  const write = () =>
    redis
      .hset(layersKey(instance), workerId, JSON.stringify({ ...layer, at: Date.now() }))
      .catch(() => undefined);
  void write();
  const timer = setInterval(write, REFRESH_MS);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await redis.hdel(layersKey(instance), workerId).catch(() => undefined);
  };
}

export async function readWorkerLayers(redis: Redis, instance: string): Promise<Map<string, WorkerLayer>> {
  const raw = await redis.hgetall(layersKey(instance));
  const found = new Map<string, WorkerLayer>();
  for (const [worker, text] of Object.entries(raw)) {
    try {
      const parsed = WorkerLayer.safeParse(JSON.parse(text));
      if (parsed.success) found.set(worker, parsed.data);
    } catch {
      // Not ours to judge: an unreadable entry is left out.
    }
  }
  return found;
}

/**
 * The `/readyz` entry: the layers live workers run under (informational, so always ok: readiness is
 * about the gateway; a worker that cannot run its layer never starts and so never shows here).
 */
export function layerReadiness(
  configured: string,
  workers: ReadonlyMap<string, WorkerLayer>,
  now: number,
): Check {
  const live = [...workers.values()].filter((w) => now - w.at <= STALE_MS);
  if (live.length === 0)
    return { ok: true, detail: `configured ${configured}; no worker has reported a layer yet` };
  const counts = new Map<string, number>();
  for (const w of live) {
    const name = `${w.layer}${w.runtime ? ` (${w.runtime})` : ''}${w.noNetwork ? ', no network grants' : ''}`;
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  const parts = [...counts].map(([name, n]) => `${name} on ${n} worker${n === 1 ? '' : 's'}`);
  return { ok: true, detail: parts.join('; ') };
}
