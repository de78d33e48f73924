import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { instanceKeys } from '../../contracts/redis/keys.js';

/**
 * What each worker says of its host (a Docker engine, named by its ID) every HEARTBEAT_MS: its free
 * capacity, for placing new conversations, and that it is alive, for telling a conversation whose home
 * is gone. Kept in Redis because the gateway and the CLI have no engine client for other hosts. Entries
 * outlive their worker on purpose: a host that went away must still be known to be gone.
 */
export const HEARTBEAT_MS = 2000;
/** Entries of workers silent this long are dropped (their host is forgotten unless a worker comes back). */
const FORGET_MS = 7 * 86_400_000;

export const HostReport = z.object({
  /** The engine's ID (`docker info` → ID): two engines on one machine are two hosts. */
  host: z.string().min(1).max(200),
  worker: z.string().min(1).max(100),
  /** The engine's name (its machine's host name), for people. */
  name: z.string().max(200).optional(),
  /**
   * DOCKER_HOST as the worker reaches it: where a drain's destination worker reads this host's
   * sandboxes; absent (the micro-VM's engine): only its own worker can.
   */
  endpoint: z.string().max(500).optional(),
  /** Running sandboxes on the engine (warm ones included), against SANDBOX_MAX_LIVE. */
  live: z.number().int().nonnegative(),
  maxLive: z.number().int().nonnegative(),
  /** Warm-pool sandboxes ready for a new conversation. */
  warm: z.number().int().nonnegative(),
  at: z.number(),
});
export type HostReport = z.infer<typeof HostReport>;

/**
 * A host's ID from its engine's `docker info`: the engine's ID, and for an engine whose data root is not
 * the default, a hash of that root too. Engines before Docker 23 take their ID from the machine's
 * /etc/docker/key.json, so two engines on one machine would otherwise be one host.
 */
export function hostIdOf(info: { ID?: string; DockerRootDir?: string }): string {
  if (!info.ID) throw new Error('the container engine reports no ID: cannot tell this host apart');
  const root = info.DockerRootDir;
  if (!root || root === '/var/lib/docker') return info.ID;
  return `${info.ID}/${createHash('sha256').update(root).digest('hex').slice(0, 8)}`;
}

export interface HostReporter {
  first: Promise<void>;
  /** Stops reporting; the entry stays (with its last time), so the host reads as gone once silent. */
  stop(): void;
}

/** Writes this worker's report now and every HEARTBEAT_MS; `measure` failing skips one beat. */
export function publishHostReport(
  redis: Redis,
  instance: string,
  measure: () => Promise<Omit<HostReport, 'at'>>,
): HostReporter {
  const key = instanceKeys(instance).hosts;
  const write = async () => {
    const report = await measure();
    await redis.hset(key, report.worker, JSON.stringify({ ...report, at: Date.now() }));
  };
  const first = write().catch(() => undefined);
  const timer = setInterval(() => void write().catch(() => undefined), HEARTBEAT_MS);
  timer.unref();
  // Now and then: forget workers gone for days (their hosts too, when no other worker reports them).
  void forgetOld(redis, key).catch(() => undefined);
  return { first, stop: () => clearInterval(timer) };
}

async function forgetOld(redis: Redis, key: string): Promise<void> {
  const raw = await redis.hgetall(key);
  const old = Object.entries(raw).flatMap(([worker, text]) => {
    const at = Number((JSON.parse(text) as { at?: unknown }).at);
    return Number.isFinite(at) && Date.now() - at > FORGET_MS ? [worker] : [];
  });
  if (old.length > 0) await redis.hdel(key, ...old);
}

export interface HostsSnapshot {
  reports: HostReport[];
  draining: Set<string>;
  /** Conversation → its home host. */
  homes: Map<string, string>;
}

/** The reports, the hosts being drained and (when asked) every conversation's home, from Redis. */
export async function readHosts(redis: Redis, instance: string, withHomes = false): Promise<HostsSnapshot> {
  const keys = instanceKeys(instance);
  const [raw, draining, homes] = await Promise.all([
    redis.hgetall(keys.hosts),
    redis.smembers(keys.drainingHosts),
    withHomes ? redis.hgetall(keys.homes) : Promise.resolve({} as Record<string, string>),
  ]);
  const reports = Object.values(raw).flatMap((text) => {
    try {
      const parsed = HostReport.safeParse(JSON.parse(text));
      return parsed.success ? [parsed.data] : [];
    } catch {
      return [];
    }
  });
  return { reports, draining: new Set(draining), homes: new Map(Object.entries(homes)) };
}
