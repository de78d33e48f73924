import type Dockerode from 'dockerode';
import type { Redis } from 'ioredis';
import { quotaUsage } from '../../../sandbox/host/driver/disk-quota.js';
import { sandboxNames } from '../../../sandbox/host/driver/docker-spec.js';
import type { SandboxInfo } from '../../../sandbox/host/driver/types.js';
import type { Logger } from '../../contracts/log/logger.js';
import {
  type PendingSkill,
  removeSandboxReport,
  SANDBOX_REPORT_REFRESH_MS,
  type SandboxStat,
  writeSandboxReport,
} from '../../shared/stores/sandbox-report.js';

/** The parts of Docker's one-shot stats this report reads. */
export interface DockerStats {
  cpu_stats?: { cpu_usage?: { total_usage?: number }; system_cpu_usage?: number; online_cpus?: number };
  precpu_stats?: { cpu_usage?: { total_usage?: number }; system_cpu_usage?: number };
  memory_stats?: {
    usage?: number;
    limit?: number;
    stats?: { inactive_file?: number; total_inactive_file?: number };
  };
}

/**
 * CPU in percent of one core and memory as `docker stats` shows them (page cache that can be dropped
 * is not counted), from Docker's two samples; what the engine left out stays undefined.
 */
export function usageOf(
  stats: DockerStats,
): Pick<SandboxStat, 'cpuPercent' | 'memoryBytes' | 'memoryLimitBytes'> {
  const cpu = stats.cpu_stats;
  const pre = stats.precpu_stats;
  const cpuDelta = (cpu?.cpu_usage?.total_usage ?? 0) - (pre?.cpu_usage?.total_usage ?? 0);
  const systemDelta = (cpu?.system_cpu_usage ?? 0) - (pre?.system_cpu_usage ?? 0);
  const cpus = cpu?.online_cpus ?? 1;
  const memory = stats.memory_stats;
  const cache = memory?.stats?.inactive_file ?? memory?.stats?.total_inactive_file ?? 0;
  return {
    ...(systemDelta > 0 && cpuDelta >= 0
      ? { cpuPercent: Math.round((cpuDelta / systemDelta) * cpus * 1000) / 10 }
      : {}),
    ...(memory?.usage !== undefined ? { memoryBytes: Math.max(0, memory.usage - cache) } : {}),
    ...(memory?.limit ? { memoryLimitBytes: memory.limit } : {}),
  };
}

export interface SandboxStatsDeps {
  redis: Redis;
  instance: string;
  workerId: string;
  engine: Dockerode;
  list: () => Promise<SandboxInfo[]>;
  /** Where the size-capped volumes are mounted on this host (absent: uncapped, or inside a micro-VM). */
  diskRoot?: string;
  /** Skills waiting for approval on this worker's disk (absent: no skills folder). */
  pendingSkills?: () => Promise<PendingSkill[]>;
  logger: Logger;
}

/** One sandbox's line of the report: its stats only while it runs, its disk whenever it is mounted. */
async function statOf(deps: SandboxStatsDeps, sandbox: SandboxInfo): Promise<SandboxStat> {
  const running = sandbox.state === 'running';
  const [stats, disk] = await Promise.all([
    running
      ? (
          deps.engine.getContainer(sandbox.containerId).stats({ stream: false }) as Promise<DockerStats>
        ).catch(() => undefined)
      : undefined,
    deps.diskRoot
      ? quotaUsage(deps.diskRoot, sandboxNames(deps.instance, sandbox.conversation).workspaceVolume).catch(
          () => undefined,
        )
      : undefined,
  ]);
  return {
    conversation: sandbox.conversation,
    state: sandbox.state.slice(0, 40),
    ...(stats ? usageOf(stats) : {}),
    ...(disk ? { diskUsedBytes: disk.used, diskTotalBytes: disk.total } : {}),
    ...(sandbox.pooled ? { pooled: true } : {}),
  };
}

/** Engine stats requests at once: each takes Docker about a second (it samples CPU twice). */
const STATS_AT_ONCE = 8;

async function inBatches<T, R>(
  items: readonly T[],
  size: number,
  each: (item: T) => Promise<R>,
): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += size)
    out.push(...(await Promise.all(items.slice(i, i + size).map(each))));
  return out;
}

/** Writes this worker's report every SANDBOX_REPORT_REFRESH_MS until stopped (which removes it). */
export function reportSandboxStats(deps: SandboxStatsDeps): { stop(): Promise<void> } {
  let running: Promise<void> | undefined;
  const write = async () => {
    const sandboxes = await deps.list();
    const [stats, pendingSkills] = await Promise.all([
      inBatches(sandboxes.slice(0, 1000), STATS_AT_ONCE, (s) => statOf(deps, s)),
      deps.pendingSkills?.().catch(() => []),
    ]);
    await writeSandboxReport(deps.redis, deps.instance, deps.workerId, {
      at: Date.now(),
      sandboxes: stats,
      ...(pendingSkills ? { pendingSkills: pendingSkills.slice(0, 200) } : {}),
    });
  };
  const tick = () => {
    if (running) return; // the last round (stats take a second each) is still going
    running = write()
      .catch((error: unknown) => deps.logger.debug({ err: error }, 'sandbox report not written'))
      .finally(() => {
        running = undefined;
      });
  };
  tick();
  const timer = setInterval(tick, SANDBOX_REPORT_REFRESH_MS);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
      await removeSandboxReport(deps.redis, deps.instance, deps.workerId).catch(() => undefined);
    },
  };
}
