import { readdirSync, readFileSync } from 'node:fs';

/**
 * CPU time spent by the parts a burst works (seconds, from /proc and the containers' cgroups): the
 * engine (dockerd), containerd, the containers' shims (with the runtime processes they ran and reaped:
 * runc or runsc create/start), the sandboxes themselves (their cgroups: under gVisor the sentry and
 * gofer too), sandbot (`up`, and the second worker), Redis. Whatever else ran on the machine is in
 * "machine, all" only.
 */
export type CpuUse = Record<string, number>;

const TICK = 100; // USER_HZ

function processTicks(pid: string): { comm: string; ticks: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime, stime, cutime, cstime: fields 14–17 of stat, 12–15 after the comm.
    const ticks = [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i] ?? 0), 0);
    return { comm, ticks };
  } catch {
    return undefined;
  }
}

function part(comm: string, pid: string, ours: readonly number[]): string | undefined {
  if (ours.includes(Number(pid))) return 'sandbot (up, workers)';
  if (Number(pid) === process.pid) return 'the bench itself (its clients, the fake model)';
  if (comm === 'dockerd') return 'dockerd';
  if (comm === 'containerd') return 'containerd';
  if (comm.startsWith('containerd-shim')) return 'shims (+ runc/runsc they ran)';
  if (comm === 'redis-server') return 'redis';
  return undefined;
}

/** The cgroups of these containers (the burst's own: other work's come and go meanwhile). */
function cgroupSeconds(containers: readonly string[]): number {
  const root = '/sys/fs/cgroup/cpuacct/docker';
  let ns = 0;
  try {
    readdirSync(root);
    for (const id of containers) {
      try {
        ns += Number(readFileSync(`${root}/${id}/cpuacct.usage`, 'utf8'));
      } catch {
        // A folder that is not a container's, or one just gone.
      }
    }
  } catch {
    return Number.NaN; // cgroup v2, or no cpuacct: not measured
  }
  return ns / 1e9;
}

function machineSeconds(): number {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]?.split(/\s+/).slice(1) ?? [];
  // user nice system irq softirq steal (not idle, not iowait).
  return [0, 1, 2, 5, 6, 7].reduce((sum, i) => sum + Number(cpu[i] ?? 0), 0) / TICK;
}

/** A reading now; `cpuSince(reading)` gives what each part spent since. */
export function cpuNow(ours: readonly number[], containers: readonly string[]): CpuUse {
  const use: CpuUse = {};
  for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    const p = processTicks(pid);
    const name = p && part(p.comm, pid, ours);
    if (p && name) use[name] = (use[name] ?? 0) + p.ticks / TICK;
  }
  use['sandboxes (their cgroups)'] = cgroupSeconds(containers);
  use['machine, all'] = machineSeconds();
  return use;
}

/** Per part, seconds spent from `before` to `after` (processes that came meanwhile count from 0). */
export function cpuSpent(before: CpuUse, after: CpuUse): CpuUse {
  return Object.fromEntries(Object.entries(after).map(([k, v]) => [k, Math.max(0, v - (before[k] ?? 0))]));
}
