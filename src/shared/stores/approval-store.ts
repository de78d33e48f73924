import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import {
  Approval,
  type ApprovalDecision,
  type ApprovalStatus,
  decisionOutcome,
} from '../../contracts/approvals/approval.js';
import { AuditActor } from '../../contracts/audit/events.js';
import { approvalKeys } from '../../contracts/redis/keys.js';
import { APPROVAL_DECIDE } from '../../contracts/redis/scripts.js';
import type { AuditRecorder } from '../audit/audit-log.js';

/** What the asking side fills in; the store adds id, times and status. */
export type ApprovalInput = Omit<Approval, 'id' | 'requestedAt' | 'expiresAtMs' | 'status'> & {
  timeoutSeconds: number;
};

export type DecideResult =
  /** The request is unknown (never made, or long gone). */
  | { outcome: 'unknown' }
  /** This call decided it. */
  | { outcome: 'decided'; approval: Approval }
  /** Someone decided it before (or it expired): nothing changed. */
  | { outcome: 'already'; approval: Approval }
  /** The decision came after the expiry: the request is now expired (denied). */
  | { outcome: 'expired'; approval: Approval };

/** A record is kept this long after its expiry, for the cards and the console. */
const KEEP_AFTER_EXPIRY_MS = 7 * 24 * 3600_000;

const Fields = z.object({
  record: z.string(),
  status: z.string(),
  decidedBy: z.string().optional(),
  decidedByName: z.string().optional(),
  decidedAt: z.string().optional(),
  scope: z.string().optional(),
  note: z.string().optional(),
});

/**
 * Approval requests in Redis (keys in approvalKeys, the decision in the APPROVAL_DECIDE script): made by
 * the worker for its turn, decided once by whoever clicks first (gateway adapters, console) or expired
 * by the worker. The asking turn blocks on a list the decision pushes to, so waiting holds no CPU.
 */
export class ApprovalStore {
  private readonly keys: ReturnType<typeof approvalKeys>;

  constructor(
    private readonly redis: Redis,
    instance: string,
    /** Records each request's end once (`approval.decided`), whoever ended it; absent: not recorded. */
    private readonly audit?: AuditRecorder,
  ) {
    this.keys = approvalKeys(instance);
  }

  async create(input: ApprovalInput, now = Date.now()): Promise<Approval> {
    const { timeoutSeconds, ...rest } = input;
    const approval = Approval.parse({
      ...rest,
      id: `apr_${randomBytes(12).toString('base64url')}`,
      requestedAt: new Date(now).toISOString(),
      expiresAtMs: now + timeoutSeconds * 1000,
      status: 'pending',
    });
    const key = this.keys.record(approval.id);
    await this.redis
      .multi()
      .hset(key, {
        record: JSON.stringify(approval),
        status: 'pending',
        expiresAtMs: String(approval.expiresAtMs),
      })
      .pexpireat(key, approval.expiresAtMs + KEEP_AFTER_EXPIRY_MS)
      .zadd(this.keys.pending, approval.expiresAtMs, approval.id)
      .exec();
    return approval;
  }

  async get(id: string): Promise<Approval | undefined> {
    const raw = await this.redis.hgetall(this.keys.record(id));
    if (!raw.record) return undefined;
    const fields = Fields.parse(raw);
    const { record, ...decision } = fields;
    return Approval.parse({ ...JSON.parse(record), ...decision });
  }

  /** A person's decision (by: the audit actor), applied once. */
  decide(
    id: string,
    decision: ApprovalDecision,
    by: { actor: string; name?: string },
    now = Date.now(),
  ): Promise<DecideResult> {
    const { status, scope } = decisionOutcome(decision);
    return this.transition(id, status, { by: by.actor, byName: by.name, scope }, now);
  }

  /** Ends a request without a person's decision (its time ran out, or its turn ended first). */
  expire(id: string, by: string, note: string, now = Date.now()): Promise<DecideResult> {
    return this.transition(id, 'expired', { by, note }, now);
  }

  private async transition(
    id: string,
    status: ApprovalStatus,
    fields: { by?: string; byName?: string; scope?: string; note?: string },
    now: number,
  ): Promise<DecideResult> {
    const result = (await this.redis.eval(
      APPROVAL_DECIDE,
      3,
      this.keys.record(id),
      this.keys.decided(id),
      this.keys.pending,
      status,
      fields.by ?? '',
      (fields.byName ?? '').slice(0, 200),
      new Date(now).toISOString(),
      fields.scope ?? '',
      (fields.note ?? '').slice(0, 300),
      String(now),
      id,
      String(KEEP_AFTER_EXPIRY_MS),
    )) as number;
    if (result === -1) return { outcome: 'unknown' };
    const approval = await this.get(id);
    if (!approval) return { outcome: 'unknown' };
    if (result === 0) return { outcome: 'already', approval };
    await this.recordEnd(approval, result === 2 ? 'gateway' : fields.by);
    return { outcome: result === 2 ? 'expired' : 'decided', approval };
  }

  private async recordEnd(approval: Approval, actor: string | undefined): Promise<void> {
    const parsed = AuditActor.safeParse(actor);
    const status = approval.status === 'pending' ? 'expired' : approval.status;
    await this.audit?.record({
      conversation: approval.conversation,
      turnId: approval.turnId,
      actor: parsed.success ? parsed.data : 'gateway',
      kind: 'approval.decided',
      data: {
        approval: approval.id,
        kind: approval.kind,
        target: approval.target,
        status,
        ...(approval.scope ? { scope: approval.scope } : {}),
        ...(approval.note ? { note: approval.note } : {}),
      },
    });
  }

  /**
   * Waits until the request is decided or `timeoutMs` passes (then undefined), on `blocking`: a Redis
   * connection of the caller's own, as BLPOP holds it. An abort ends the wait by closing nothing: the
   * caller disconnects `blocking` (or lets the timeout run out).
   */
  async waitForDecision(blocking: Redis, id: string, timeoutMs: number): Promise<Approval | undefined> {
    const current = await this.get(id);
    if (current && current.status !== 'pending') return current;
    const popped = await blocking.blpop(this.keys.decided(id), Math.max(0.01, timeoutMs / 1000));
    if (popped === null) return undefined;
    return this.get(id);
  }

  /** Requests not yet decided, oldest expiry first (the console's list). */
  async pending(limit = 200): Promise<Approval[]> {
    const ids = await this.redis.zrange(this.keys.pending, '0', String(limit - 1));
    const found = await Promise.all(ids.map((id) => this.get(id)));
    return found.filter((a): a is Approval => a !== undefined && a.status === 'pending');
  }

  /** Remembers where a platform posted the card (a message ts, channel and message id…), to edit it later. */
  async setCardRef(id: string, platform: string, ref: Record<string, string>): Promise<void> {
    const key = this.keys.card(id);
    await this.redis
      .multi()
      .hset(key, platform, JSON.stringify(ref))
      .pexpire(key, KEEP_AFTER_EXPIRY_MS * 2)
      .exec();
  }

  async cardRef(id: string, platform: string): Promise<Record<string, string> | undefined> {
    const raw = await this.redis.hget(this.keys.card(id), platform);
    if (raw === null) return undefined;
    const parsed = z.record(z.string(), z.string()).safeParse(JSON.parse(raw));
    return parsed.success ? parsed.data : undefined;
  }
}
