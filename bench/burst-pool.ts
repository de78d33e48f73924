import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import type { SandboxInfo } from '../sandbox/host/driver/types.js';
import { readyInPool } from './pool.js';
import { until } from './stats.js';

/**
 * The burst served by a warm pool (SANDBOX_WARM_POOL) with the default disk caps: the pool is filled
 * before the burst (how long that takes, and what the idle pool holds of memory), and refilled after
 * it (how long until it is full again).
 */
export interface PoolBurst {
  size: number;
  /** Worker ready → pool full. */
  fillMs: number;
  /** The idle pool's sandboxes' cgroups: resident memory and all charged (page cache included), MiB. */
  idleRssMb: number;
  idleUsageMb: number;
  /** Conversations of the burst served from the pool. */
  served: number;
  /** Last reply → pool full again (undefined: not within the time allowed). */
  refillMs: number | undefined;
}

/** The settings of a pooled burst: a pool as large as the burst, room for both under SANDBOX_MAX_LIVE. */
export function poolSettings(pool: number, burst: number): Record<string, string> {
  return { SANDBOX_WARM_POOL: String(pool), SANDBOX_MAX_LIVE: String(pool + burst) };
}

/** Waits until the instance's pools hold `size` ready sandboxes; how long that took (ms). */
export async function poolFull(redis: Redis, instance: string, size: number, timeoutMs: number) {
  const began = performance.now();
  await until(
    'the warm pool full',
    async () => ((await readyInPool(redis, instance)) >= size ? true : undefined),
    timeoutMs,
    250,
  );
  return performance.now() - began;
}

/** Memory of these containers' cgroups (cgroup v1, as bench/cpu-use.ts reads CPU), MiB. */
export function cgroupMemory(containers: readonly string[]): { rssMb: number; usageMb: number } {
  let rss = 0;
  let usage = 0;
  for (const id of containers) {
    const dir = `/sys/fs/cgroup/memory/docker/${id}`;
    try {
      const stat = readFileSync(`${dir}/memory.stat`, 'utf8');
      rss += Number(/^total_rss (\d+)$/m.exec(stat)?.[1] ?? Number.NaN);
      usage += Number(readFileSync(`${dir}/memory.usage_in_bytes`, 'utf8'));
    } catch {
      return { rssMb: Number.NaN, usageMb: Number.NaN }; // cgroup v2: not measured
    }
  }
  return { rssMb: rss / 2 ** 20, usageMb: usage / 2 ** 20 };
}

/** Before the burst: the pool filled, its memory read. */
export async function fillPool(
  redis: Redis,
  instance: string,
  size: number,
  listPool: () => Promise<{ containerId: string }[]>,
): Promise<Omit<PoolBurst, 'served' | 'refillMs'>> {
  const fillMs = await poolFull(redis, instance, size, 1_200_000);
  const memory = cgroupMemory((await listPool()).map((p) => p.containerId));
  return { size, fillMs, idleRssMb: memory.rssMb, idleUsageMb: memory.usageMb };
}

/** After the burst: how many the pool served, and how long it takes to refill. */
export async function afterBurst(
  redis: Redis,
  instance: string,
  filled: Omit<PoolBurst, 'served' | 'refillMs'>,
  listed: SandboxInfo[],
): Promise<PoolBurst> {
  const served = listed.filter((s) => s.pooled).length;
  const refillMs = await poolFull(redis, instance, filled.size, 1_200_000).catch(() => undefined);
  return { ...filled, served, refillMs };
}

/** Lazily unmounts whatever is still mounted under `dir` (a burst's disk folder), so it can be removed. */
export function unmountUnder(dir: string): void {
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4] ?? '')
    .filter((path) => path.startsWith(`${dir}/`));
  for (const path of mounts) execFileSync('umount', ['-l', path]);
}
