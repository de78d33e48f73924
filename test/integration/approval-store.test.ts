import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import type { AuditInput } from '../../src/contracts/audit/events.js';
import { webConversationId } from '../../src/contracts/conversation/id.js';
import type { AuditRecorder } from '../../src/shared/audit/audit-log.js';
import { ApprovalAllowances } from '../../src/shared/stores/approval-allowances.js';
import { type ApprovalInput, ApprovalStore } from '../../src/shared/stores/approval-store.js';
import { dropInstanceKeys, REDIS_URL, testInstance } from '../../testkit/redis.js';

/**
 * The approval store on a real Redis: one outcome whoever clicks (concurrent decisions, a click after
 * the expiry), the asking side woken by BLPOP without polling, the pending list, and one audit event
 * per request's end.
 */

const instance = testInstance('approval-store');
const redis = new Redis(REDIS_URL);
const recorded: AuditInput[] = [];
const audit: AuditRecorder = { content: false, record: async (input) => void recorded.push(input) };
const store = new ApprovalStore(redis, instance, audit);

afterAll(async () => {
  await dropInstanceKeys(instance);
  redis.disconnect();
});

const input = (over: Partial<ApprovalInput> = {}): ApprovalInput => ({
  conversation: webConversationId('approvals'),
  platform: 'web',
  route: {},
  kind: 'network',
  target: 'pypi.org',
  reason: 'pip install requests',
  turnId: 't1',
  timeoutSeconds: 60,
  ...over,
});

describe('approval store', () => {
  it('applies one decision of many concurrent ones, and records the end once', async () => {
    const approval = await store.create(input());
    const results = await Promise.all([
      store.decide(approval.id, 'approve', { actor: 'user:slack:U1', name: 'Ana' }),
      store.decide(approval.id, 'deny', { actor: 'user:slack:U2' }),
      store.decide(approval.id, 'approve_hour', { actor: 'admin:web-api' }),
      store.expire(approval.id, 'worker:w1', 'Expired without a decision: denied'),
    ]);
    const decided = results.filter((r) => r.outcome === 'decided');
    expect(decided).toHaveLength(1);
    expect(results.filter((r) => r.outcome === 'already')).toHaveLength(3);
    const final = await store.get(approval.id);
    const winner = decided[0];
    expect(winner?.outcome === 'decided' && winner.approval).toEqual(final);
    for (const r of results) if (r.outcome !== 'unknown') expect(r.approval.status).toBe(final?.status);
    const ends = recorded.filter((e) => e.kind === 'approval.decided' && e.data.approval === approval.id);
    expect(ends).toHaveLength(1);
    expect(ends[0]?.actor).toBe(final?.decidedBy);
  });

  it('turns a click after the expiry into the expiry: denied, whoever clicked', async () => {
    const approval = await store.create(input({ timeoutSeconds: 1 }), Date.now() - 5000);
    const late = await store.decide(approval.id, 'approve', { actor: 'user:slack:U1' });
    expect(late.outcome).toBe('expired');
    const final = await store.get(approval.id);
    expect(final).toMatchObject({ status: 'expired', note: 'Expired without a decision: denied' });
    expect(final?.scope).toBeUndefined();
    const again = await store.decide(approval.id, 'approve', { actor: 'user:slack:U1' });
    expect(again.outcome).toBe('already');
    expect(await store.decide('apr_nosuchrequest01', 'deny', { actor: 'gateway' })).toEqual({
      outcome: 'unknown',
    });
  });

  it('wakes the waiting side by BLPOP as soon as someone decides, and lists only pending requests', async () => {
    const waiting = await store.create(input({ target: 'files.pythonhosted.org' }));
    const other = await store.create(input({ target: 'example.org' }));
    expect((await store.pending()).map((a) => a.id)).toEqual(expect.arrayContaining([waiting.id, other.id]));
    const blocking = redis.duplicate();
    try {
      const started = Date.now();
      const woken = store.waitForDecision(blocking, waiting.id, 30_000);
      await new Promise((resolve) => setTimeout(resolve, 300));
      await store.decide(waiting.id, 'deny', { actor: 'admin:console:ana', name: 'ana' });
      const approval = await woken;
      expect(approval).toMatchObject({
        status: 'denied',
        decidedBy: 'admin:console:ana',
        decidedByName: 'ana',
      });
      expect(Date.now() - started).toBeLessThan(5000);
      // Times out (undefined) when nobody decides.
      expect(await store.waitForDecision(blocking, other.id, 200)).toBeUndefined();
    } finally {
      blocking.disconnect();
    }
    const pending = (await store.pending()).map((a) => a.id);
    expect(pending).toContain(other.id);
    expect(pending).not.toContain(waiting.id);
  });

  it('keeps one-hour allowances until they lapse and conversation-long ones for good', async () => {
    const allowances = new ApprovalAllowances(redis, instance);
    const conversation = webConversationId('allowances');
    await allowances.add(
      conversation,
      { kind: 'network', target: 'pypi.org', approval: 'apr_a' },
      Date.now() + 60_000,
    );
    await allowances.add(
      conversation,
      { kind: 'network', target: 'gone.org', approval: 'apr_b' },
      Date.now() + 300,
    );
    await allowances.add(conversation, { kind: 'delegate', target: '2', approval: 'apr_c' });
    expect((await allowances.grants(conversation)).sort()).toEqual(['gone.org', 'pypi.org']);
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(await allowances.grants(conversation)).toEqual(['pypi.org']);
    expect(await allowances.extraSubAgents(conversation)).toBe(2);
  });
});
