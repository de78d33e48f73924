/**
 * Fair shares of the workers between people and channels: at most `perUser` running tasks per person
 * and `perChannel` per channel. Tasks over a limit wait, first come first served. Pure: the task gate
 * (task-gate.ts) feeds it what Redis holds and carries the decision out.
 */

export interface Contender {
  conversation: string;
  /** `<platform>:<user id>` of the person who started the task. */
  owner: string;
  scope: string;
  /** When it started waiting (epoch ms); the earlier, the sooner it runs. */
  since: number;
}

export interface TaskLimits {
  perUser: number;
  perChannel: number;
}

export type Admission =
  | { admit: true }
  | {
      admit: false;
      /** Which limit holds it back. */
      reason: 'user' | 'channel';
      /** 1 for the next to run once a slot of that kind frees. */
      position: number;
      limit: number;
    };

/**
 * Whether `target` may run now. Waiting tasks are taken in order of arrival, each admitted while its
 * owner and its channel are under their limits; the target runs if it is among those admitted. When it
 * is not, its place in line counts the earlier waiting tasks held back by the same limit (the same
 * person, or the same channel).
 */
export function decideAdmission(
  target: Contender,
  running: readonly Contender[],
  waiting: readonly Contender[],
  limits: TaskLimits,
): Admission {
  const users = new Map<string, number>();
  const channels = new Map<string, number>();
  const bump = (map: Map<string, number>, key: string) => map.set(key, (map.get(key) ?? 0) + 1);
  for (const task of running) {
    if (task.conversation === target.conversation) continue;
    bump(users, task.owner);
    bump(channels, task.scope);
  }
  const line = [...waiting.filter((w) => w.conversation !== target.conversation), target].sort(
    (a, b) => a.since - b.since || a.conversation.localeCompare(b.conversation),
  );
  const blocked: { task: Contender; reason: 'user' | 'channel' }[] = [];
  for (const task of line) {
    const userFull = (users.get(task.owner) ?? 0) >= limits.perUser;
    const channelFull = (channels.get(task.scope) ?? 0) >= limits.perChannel;
    if (!userFull && !channelFull) {
      if (task.conversation === target.conversation) return { admit: true };
      bump(users, task.owner);
      bump(channels, task.scope);
      continue;
    }
    const reason = userFull ? 'user' : 'channel';
    if (task.conversation === target.conversation) {
      const same = (other: Contender) =>
        reason === 'user' ? other.owner === task.owner : other.scope === task.scope;
      const ahead = blocked.filter((b) => b.reason === reason && same(b.task)).length;
      return {
        admit: false,
        reason,
        position: ahead + 1,
        limit: reason === 'user' ? limits.perUser : limits.perChannel,
      };
    }
    blocked.push({ task, reason });
  }
  return { admit: true };
}

/** What the thread reads while its task waits. */
export function waitingNotice(admission: Extract<Admission, { admit: false }>): string {
  const why =
    admission.reason === 'user'
      ? `you already have ${admission.limit} task${admission.limit === 1 ? '' : 's'} running (the limit per person)`
      : `this channel already has ${admission.limit} task${admission.limit === 1 ? '' : 's'} running (the limit per channel)`;
  return `Waiting for a free slot: ${why}. This task is ${ordinal(admission.position)} in line and starts by itself.`;
}

export function ordinal(n: number): string {
  const tens = n % 100;
  if (tens >= 11 && tens <= 13) return `${n}th`;
  return `${n}${['th', 'st', 'nd', 'rd'][n % 10] ?? 'th'}`;
}
