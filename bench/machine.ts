import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, freemem, loadavg, release, totalmem } from 'node:os';
import type Dockerode from 'dockerode';
import type { Redis } from 'ioredis';

export interface Machine {
  cpus: number;
  cpuModel: string;
  memory: string;
  kernel: string;
  docker: string;
  redis: string;
  node: string;
  commit: string;
  load: string;
}

/** The facts a reader needs to compare these figures with their own machine. */
export async function describeMachine(docker: Dockerode, redis: Redis): Promise<Machine> {
  const engine = await docker.version();
  const engineInfo = (await docker.info()) as { DefaultRuntime?: string; CgroupVersion?: string };
  const info = await redis.info('server');
  const aof = /aof_enabled:(\d)/.exec(await redis.info('persistence'))?.[1] === '1';
  const gib = (bytes: number) => `${(bytes / 1024 ** 3).toFixed(1)} GiB`;
  return {
    cpus: Number(run('nproc') || cpus().length),
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memory: `${gib(totalmem())} total, ${gib(freemem())} free`,
    kernel: release(),
    docker: `${engine.Version} (API ${engine.ApiVersion}), runtime ${engineInfo.DefaultRuntime ?? '?'}, cgroup v${engineInfo.CgroupVersion ?? '?'}`,
    redis: `${/redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown'} (appendonly ${aof ? 'on' : 'off'})`,
    node: process.version,
    commit: run('git', ['rev-parse', '--short', 'HEAD']) || 'unknown',
    load: loadavg()
      .map((l) => l.toFixed(2))
      .join(' '),
  };
}

function run(file: string, args: string[] = []): string {
  try {
    return execFileSync(file, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return '';
  }
}

/** Resident memory of a process, from /proc (Linux). */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = /VmRSS:\s+(\d+) kB/.exec(status)?.[1];
  return kb ? Number(kb) * 1024 : Number.NaN;
}

/** MemAvailable of the host, bytes. */
export function availableBytes(): number {
  const meminfo = readFileSync('/proc/meminfo', 'utf8');
  return Number(/MemAvailable:\s+(\d+) kB/.exec(meminfo)?.[1] ?? Number.NaN) * 1024;
}
