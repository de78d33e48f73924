import type { Redis } from 'ioredis';
import { z } from 'zod';
import { instanceKeys } from '../../contracts/redis/keys.js';
import type { Check } from '../../gateway/readiness.js';

/**
 * Which sandbox layer each live worker checked and runs under, kept in Redis so `/readyz` on any gateway
 * reports the layers in force (not just what the gateway's own settings say). Each worker rewrites its
 * entry every REFRESH_MS; an entry older than STALE_MS belongs to a worker that is gone.
 */
const REFRESH_MS = 15_000;
const STALE_MS = 45_000;

export const WorkerLayer = z.object({
  layer: z.enum(['container', 'gvisor', 'microvm']),
  runtime: z.string().optional(),
  /** What the start-up check saw (runtime, how it ran). */
  detail: z.string(),
  /** What SANDBOX_LAYER said (auto: the worker chose the layer), and why this layer. */
  setting: z.enum(['auto', 'container', 'gvisor', 'microvm']).optional(),
  reason: z.string().max(500).optional(),
  /** How granted sandboxes reach the egress proxy (see EgressRoute). */
  egress: z.enum(['bridge', 'tunnel']).optional(),
  /** Whether the engine the worker's sandboxes live on (the micro-VM's, under microvm) answered its last ping. */
  engine: z.object({ ok: z.boolean(), detail: z.string().max(300) }).optional(),
  at: z.number(),
});
export type WorkerLayer = z.infer<typeof WorkerLayer>;

/**
 * Publishes a worker's layer until the returned stop is called (which removes it), with the answer of
 * `pingEngine` (the engine its sandboxes live on) each time.
 */
export function publishWorkerLayer(
  redis: Redis,
  instance: string,
  workerId: string,
  layer: Omit<WorkerLayer, 'at' | 'engine'>,
  pingEngine?: () => Promise<unknown>,
): () => Promise<void> {
  const write = async () => {
    const engine = pingEngine ? await engineAnswer(pingEngine) : undefined;
    await redis
      .hset(
        instanceKeys(instance).layers,
        workerId,
        JSON.stringify({ ...layer, ...(engine ? { engine } : {}), at: Date.now() }),
      )
      .catch(() => undefined);
  };
  void write();
  const timer = setInterval(write, REFRESH_MS);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await redis.hdel(instanceKeys(instance).layers, workerId).catch(() => undefined);
  };
}

async function engineAnswer(ping: () => Promise<unknown>): Promise<{ ok: boolean; detail: string }> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('no answer within 5 s')), 5000);
  });
  try {
    await Promise.race([ping(), late]);
    return { ok: true, detail: 'answering' };
  } catch (error) {
    return { ok: false, detail: (error instanceof Error ? error.message : String(error)).slice(0, 300) };
  } finally {
    clearTimeout(timer);
  }
}

export async function readWorkerLayers(redis: Redis, instance: string): Promise<Map<string, WorkerLayer>> {
  const raw = await redis.hgetall(instanceKeys(instance).layers);
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
 * The `/readyz` entry: the layers live workers run under, and whether the engine their sandboxes live
 * on answers (the micro-VM's engine is reachable by its worker alone, so the worker reports it). Not
 * ok only when live workers report and none of their engines answers: then no sandbox can start.
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
    const engineDown = w.engine && !w.engine.ok ? `, its engine not answering (${w.engine.detail})` : '';
    const chosen = w.setting === 'auto' && w.reason ? `, chosen by SANDBOX_LAYER=auto: ${w.reason}` : '';
    const name = `${w.layer}${w.runtime ? ` (${w.runtime})` : ''}${w.egress === 'tunnel' ? ', egress tunnelled' : ''}${engineDown}${chosen}`;
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  const parts = [...counts].map(([name, n]) => `${name} on ${n} worker${n === 1 ? '' : 's'}`);
  return { ok: live.some((w) => w.engine?.ok !== false), detail: parts.join('; ') };
}
