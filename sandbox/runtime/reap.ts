import { readdirSync, readFileSync } from 'node:fs';

/**
 * Kills every process of the agent's uid except the runtime itself and the container's init: what a
 * turn started in the background (`setsid`, double forks) does not live on into the next turn. Only
 * meant for the sandbox (its own PID namespace); the runtime does it when started with --reap-strays.
 */
export function reapStrays(self = process.pid, uid = process.getuid?.() ?? -1, spare?: number): number[] {
  const killed: number[] = [];
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid <= 1 || pid === self || pid === spare) continue;
    if (ownerOf(pid) !== uid) continue;
    try {
      process.kill(pid, 'SIGKILL');
      killed.push(pid);
    } catch {
      // Gone already.
    }
  }
  return killed;
}

function ownerOf(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]);
  } catch {
    return undefined;
  }
}
