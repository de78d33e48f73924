import type { Redis } from 'ioredis';
import { z } from 'zod';
import { ApprovalKind } from '../../contracts/approvals/approval.js';
import type { ConversationId } from '../../contracts/conversation/id.js';
import { Grant } from '../../contracts/policy/network-policy.js';
import { approvalKeys } from '../../contracts/redis/keys.js';

/**
 * What approvals gave a conversation besides the admin stores: one-hour grants, skills and sub-agent
 * allowances (lapse an hour after the decision), and sub-agent allowances for the whole conversation
 * (no lapse). One ZSET per conversation (approvalKeys.temporary): member = the entry's JSON, score = when
 * it lapses (ms; +inf: never). Network grants and skills approved for the conversation go to the admin
 * stores instead (NetworkPolicyStore, SkillEnablement), like an admin's `network allow`/`skill enable`.
 */

export const Allowance = z.object({
  kind: ApprovalKind,
  /** A grant, a skill name, or a count of extra sub-agents. */
  target: z.string().min(1).max(260),
  /** The approval that gave it (also keeps two equal entries apart). */
  approval: z.string().max(60),
});
export type Allowance = z.infer<typeof Allowance>;

/** The entries still in force at `now`, from ZRANGE … WITHSCORES pairs; unreadable ones are dropped. */
export function activeAllowances(pairs: readonly string[], now: number): Allowance[] {
  const active: Allowance[] = [];
  for (let i = 0; i + 1 < pairs.length; i += 2) {
    const until = pairs[i + 1] === 'inf' || pairs[i + 1] === '+inf' ? Infinity : Number(pairs[i + 1]);
    if (!(until > now)) continue;
    try {
      const parsed = Allowance.safeParse(JSON.parse(pairs[i] ?? ''));
      if (parsed.success) active.push(parsed.data);
    } catch {
      // not ours: skipped
    }
  }
  return active;
}

/** Network grants among the entries (only those the Grant schema still accepts). */
export function allowedGrants(entries: readonly Allowance[]): Grant[] {
  const grants = entries
    .filter((e) => e.kind === 'network')
    .map((e) => Grant.safeParse(e.target))
    .filter((g) => g.success)
    .map((g) => g.data);
  return [...new Set(grants)];
}

/** Extra sub-agents the entries allow, together. */
export function extraSubAgents(entries: readonly Allowance[]): number {
  return entries
    .filter((e) => e.kind === 'delegate')
    .reduce((sum, e) => sum + (Number.parseInt(e.target, 10) || 0), 0);
}

export class ApprovalAllowances {
  private readonly keys: ReturnType<typeof approvalKeys>;

  constructor(
    private readonly redis: Redis,
    instance: string,
  ) {
    this.keys = approvalKeys(instance);
  }

  /** Adds an entry until `untilMs` (absent: for as long as the conversation lives). */
  async add(conversation: ConversationId, entry: Allowance, untilMs?: number): Promise<void> {
    const key = this.keys.temporary(conversation);
    const score = untilMs === undefined ? '+inf' : String(untilMs);
    await this.redis.zadd(key, score, JSON.stringify(Allowance.parse(entry)));
    // Lapsed entries go; the key itself goes when its last entry lapses (never while one has no end).
    await this.redis.zremrangebyscore(key, '-inf', `(${Date.now()}`);
    const last = await this.redis.zrange(key, '-1', '-1', 'WITHSCORES');
    if (last[1] !== undefined && Number.isFinite(Number(last[1]))) {
      await this.redis.pexpireat(key, Math.ceil(Number(last[1])) + 1000);
    } else {
      await this.redis.persist(key);
    }
  }

  async active(conversation: ConversationId, now = Date.now()): Promise<Allowance[]> {
    const pairs = await this.redis.zrangebyscore(
      this.keys.temporary(conversation),
      `(${now}`,
      '+inf',
      'WITHSCORES',
    );
    return activeAllowances(pairs, now);
  }

  async grants(conversation: ConversationId): Promise<Grant[]> {
    return allowedGrants(await this.active(conversation));
  }

  async skills(conversation: ConversationId): Promise<string[]> {
    const entries = await this.active(conversation);
    return [...new Set(entries.filter((e) => e.kind === 'skill').map((e) => e.target))];
  }

  async extraSubAgents(conversation: ConversationId): Promise<number> {
    return extraSubAgents(await this.active(conversation));
  }
}
