import { chmodSync, existsSync } from 'node:fs';
import { MAX_SKILL_ACCESS, SKILL_UID_BASE } from '../../src/contracts/protocol/skill-tools.js';

/**
 * Who the runtime's children run as, when the runtime starts as root (the sandbox's container spec:
 * uid 0 with only SETUID, SETGID, SETPCAP and KILL). The runtime keeps real and saved uid 0 but works
 * with effective uid `agent`: its file tools write as the agent, while the agent cannot signal, trace
 * or read it (/proc/<pid>/environ, mem, fd: another real uid, and not dumpable). Each process it starts
 * goes through `setpriv` to one uid entirely (real, effective, saved), no groups and an empty
 * capability bounding set: the agent's commands as `agent`, the tools of a skill holding a proxy
 * credential as that skill's own uid, so neither the agent nor another skill can read the credential.
 */
export interface Privilege {
  agentUid: number;
  /** Runs `fn` with effective uid 0 (to start a process as another uid, or signal one), then drops back. */
  asRoot<T>(fn: () => T): T;
  /**
   * The command that runs what follows it as `uid` alone, in `cwd` (entered after the switch: root
   * without DAC capabilities cannot enter the agent's 0700 workspace). Spawn it from `/`.
   */
  runAs(uid: number, cwd: string): { file: string; args: string[] };
  /** Every uid whose processes are the turn's (the reaper kills them all between turns). */
  turnUids(): Set<number>;
}

const SETPRIV = '/usr/bin/setpriv';
const ENV = '/usr/bin/env';

/**
 * Drops to effective uid `agentUid` when running as root; undefined (nothing to drop) otherwise.
 * Throws when the image lacks what starting processes as other uids needs.
 */
export function dropPrivilege(agentUid: number): Privilege | undefined {
  if (process.getuid?.() !== 0 || !process.seteuid || !process.setegid || !process.setgroups) {
    return undefined;
  }
  for (const tool of [SETPRIV, ENV]) {
    // Without them no process could be started as one uid alone: refuse to start rather than run as root.
    if (!existsSync(tool)) throw new Error(`${tool} is missing (util-linux's setpriv, coreutils' env)`);
  }
  const { seteuid, setegid } = process;
  process.setgroups([]);
  setegid(agentUid);
  seteuid(agentUid);
  return {
    agentUid,
    asRoot(fn) {
      seteuid(0);
      setegid(0);
      try {
        return fn();
      } finally {
        setegid(agentUid);
        seteuid(agentUid);
      }
    },
    runAs: (uid, cwd) => ({
      file: SETPRIV,
      args: [
        `--reuid=${uid}`,
        `--regid=${uid}`,
        '--clear-groups',
        '--inh-caps=-all',
        '--bounding-set=-all',
        '--',
        ENV,
        '-C',
        cwd,
      ],
    }),
    turnUids: () =>
      new Set([agentUid, ...Array.from({ length: MAX_SKILL_ACCESS }, (_, i) => SKILL_UID_BASE + i)]),
  };
}

/**
 * Closes the agent's folders (/workspace, /session) to the sandbox's other uids: a skill's tools under
 * their own uid get neither the agent's files nor its history (a volume's root may be 0755). Best effort:
 * a folder the agent does not own is left as it is.
 */
export function closeToOthers(dirs: readonly string[]): void {
  for (const dir of dirs) {
    try {
      chmodSync(dir, 0o700);
    } catch {
      // not ours to close
    }
  }
}
