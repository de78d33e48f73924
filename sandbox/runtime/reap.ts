import { readdirSync, readFileSync } from 'node:fs';

/** How the reaper sees and signals processes: /proc and kill(2) in the sandbox, fakes in tests. */
export interface ProcessTable {
  /** Every pid visible now. */
  pids(): number[];
  /** The pid's real uid; undefined when it is gone. */
  ownerOf(pid: number): number | undefined;
  /** Sends the signal; false when the process is gone. */
  signal(pid: number, signal: 'SIGSTOP' | 'SIGKILL'): boolean;
}

/** Rounds of stop-then-kill before giving up: each round catches what forked during the last one. */
const MAX_ROUNDS = 50;

export interface ReapResult {
  /** Distinct pids killed. */
  killed: number[];
  /** Processes of the uid still there after the last round (0 unless something outran every round). */
  left: number;
}

/**
 * Kills every process of the agent's uid (or uids: the skills' too) except the runtime itself and the container's init,
 * until none is left: what a turn started in the background (`setsid`, double forks, chains that fork
 * their next generation and exit) does not live on into the next turn. One pass over /proc is not
 * enough, since a chain forks a child the pass has not listed yet; so each round first stops every
 * process it sees (a stopped process forks no more), then kills them, and rounds repeat until a round
 * finds none. Only meant for the sandbox (its own PID namespace): the runtime does it when started
 * with --reap-strays.
 */
export function reapStrays(
  self = process.pid,
  uid: number | ReadonlySet<number> = process.getuid?.() ?? -1,
  table: ProcessTable = procTable,
): ReapResult {
  const killed = new Set<number>();
  const owned = (pid: number) => {
    const owner = table.ownerOf(pid);
    return owner !== undefined && (typeof uid === 'number' ? owner === uid : uid.has(owner));
  };
  const strays = () => table.pids().filter((pid) => pid > 1 && pid !== self && owned(pid));
  for (let round = 0; round < MAX_ROUNDS; round++) {
    const seen = strays();
    if (seen.length === 0) return { killed: [...killed], left: 0 };
    // Only processes killed already and still dying: give them a moment rather than spin.
    if (seen.every((pid) => killed.has(pid))) pause(2);
    for (const pid of seen) table.signal(pid, 'SIGSTOP');
    for (const pid of seen) if (table.signal(pid, 'SIGKILL')) killed.add(pid);
  }
  return { killed: [...killed], left: strays().length };
}

function pause(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export const procTable: ProcessTable = {
  pids: () =>
    readdirSync('/proc')
      .map(Number)
      .filter((pid) => Number.isInteger(pid)),
  ownerOf(pid) {
    try {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      // A zombie is dead already (its parent, the init, reaps it): nothing to kill.
      if (/^State:\s+Z/m.test(status)) return undefined;
      return Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]);
    } catch {
      return undefined;
    }
  },
  signal(pid, signal) {
    try {
      process.kill(pid, signal);
      return true;
    } catch {
      return false;
    }
  },
};
