import type { Socket } from 'node:net';
import { SKILL_UID_BASE, type SkillAccess } from '../../src/contracts/protocol/skill-tools.js';
import type { Privilege } from './privilege.js';
import { procTable, type ReapResult, reapStrays } from './reap.js';
import { loopbackPeerUid } from './socket-owner.js';

/**
 * The skill of the turn whose tools opened this tunnel connection: its socket's owner is that skill's
 * uid (only the runtime, as root, starts processes as it; so only with privilege, else every process
 * is the agent's).
 */
export function skillOfConnection(
  socket: Socket,
  tunnelPort: number,
  skillAccess: readonly SkillAccess[],
): string | undefined {
  if (!socket.remotePort) return undefined;
  const uid = loopbackPeerUid(socket.remotePort, tunnelPort);
  if (uid === undefined || uid < SKILL_UID_BASE) return undefined;
  return skillAccess[uid - SKILL_UID_BASE]?.skill;
}

/** Kills what the turn left running: the agent's processes, and the skills' under their own uids. */
export function reapTurn(privilege: Privilege | undefined): ReapResult {
  if (!privilege) return reapStrays(process.pid);
  // Root only for each kill(2) (the skills' uids are not the runtime's), not for the reading of /proc.
  const table = {
    ...procTable,
    signal: (pid: number, signal: 'SIGSTOP' | 'SIGKILL') =>
      privilege.asRoot(() => procTable.signal(pid, signal)),
  };
  return reapStrays(process.pid, privilege.turnUids(), table);
}
