import { readdirSync } from 'node:fs';
import { expect, it } from 'vitest';
import { checkAuditDatabase } from '../../src/cli/doctor/database.js';
import { AuditBody } from '../../src/contracts/audit/events.js';
import { type ConversationId, conversationKey } from '../../src/contracts/conversation/id.js';
import { GENESIS_HASH, seal, verifyChain } from '../../src/shared/audit/chain.js';
import { AuditConflictError, PgAuditJournal } from '../../src/shared/audit/pg-journal.js';
import { AUDIT_TABLE } from '../../src/shared/audit/pg-schema.js';
import { parseEvents } from '../../src/shared/audit/summary.js';
import { verifyAudit } from '../../src/shared/audit/verify.js';
import { sandbotMetrics } from '../../src/shared/metrics.js';
import { testInstance } from '../../testkit/redis.js';
import { toolCall } from '../helpers/audit-events.js';
import { auditPgFixture, commandOf } from '../helpers/audit-postgres.js';
import { describePostgres } from '../helpers/postgres.js';

/**
 * The audit store writing to PostgreSQL (SANDBOT_DATABASE_URL) on real Redis and a real database: the
 * chain and its order across writers, the unique (conversation, seq) backstop and how a conflict is
 * reported and recovered, the tables and their schema version, the doctor's check, and the retention.
 * The CLI against the database: audit-postgres-cli.test.ts.
 */

const instance = testInstance('audit-pg');

describePostgres('the audit log in PostgreSQL', (url) => {
  const { dirs, sql, openLog, eventsOf } = auditPgFixture(url, instance);
  const failures = async (stage: string) =>
    (await sandbotMetrics().auditFailures.get()).values.find((v) => v.labels.stage === stage)?.value ?? 0;

  it('chains events from two writers into one order in the database, no files written', async () => {
    const conversation = 'web:pg-shared' as ConversationId;
    const [a, b] = [openLog(), openLog()];
    const recorded = [];
    for (let i = 0; i < 50; i++) {
      recorded.push(a.record(toolCall(conversation, `a${i}`)));
      recorded.push(b.record(toolCall(conversation, `b${i}`, 'worker:w-b')));
    }
    await Promise.all(recorded);
    await Promise.all([a.settle(), b.settle()]);
    const text = (await b.journal.read(conversation)) ?? '';
    expect(verifyChain(text, conversationKey(conversation))).toMatchObject({ events: 100, lastSeq: 100 });
    const commands = (await eventsOf(a, conversation)).map(commandOf);
    expect(commands.filter((c) => c.startsWith('a'))).toEqual(Array.from({ length: 50 }, (_, i) => `a${i}`));
    expect(commands.filter((c) => c.startsWith('b'))).toEqual(Array.from({ length: 50 }, (_, i) => `b${i}`));
    const { rows } = await sql.query<{ seq: string; kind: string }>(
      `SELECT seq, kind FROM ${AUDIT_TABLE} WHERE instance = $1 AND conversation = $2 ORDER BY seq`,
      [instance, conversation],
    );
    expect(rows.map((r) => Number(r.seq))).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    expect(readdirSync(dirs.worker)).toEqual([]);
    const [verdict] = await verifyAudit(a.journal, a.store, conversation);
    expect(verdict?.problem).toBeUndefined();
    expect(await a.store.pendingCount(conversation)).toBe(0);
  });

  it('lets one writer append seq N: the other gets a conflict, and the database holds one', async () => {
    const conversation = 'web:pg-race' as ConversationId;
    const [one, two] = [new PgAuditJournal(url, instance), new PgAuditJournal(url, instance)];
    try {
      const body = (command: string) =>
        AuditBody.parse({
          id: crypto.randomUUID(),
          time: new Date().toISOString(),
          ...toolCall(conversation, command),
        });
      const first = seal(body('first'), 1, GENESIS_HASH);
      const results = await Promise.allSettled([
        one.append(conversation, [first]),
        two.append(conversation, [seal(body('two'), 1, GENESIS_HASH)]),
      ]);
      expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
      const refused = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
      expect(refused.reason).toBeInstanceOf(AuditConflictError);
      expect(String(refused.reason.message)).toMatch(
        /^audit events 1–1 of web:pg-race not written: seq 1 is already in the database \(another writer appended it\)/,
      );
      const text = (await one.read(conversation)) ?? '';
      expect(verifyChain(text, conversationKey(conversation))).toMatchObject({ events: 1, lastSeq: 1 });
      // A batch is all or nothing: seq 2 and 3 with a taken seq 1 leave nothing behind.
      const head = await one.head(conversation);
      const second = seal(body('second'), 2, head!.hash);
      const batch = [seal(body('again'), 1, GENESIS_HASH), second];
      await expect(two.append(conversation, batch)).rejects.toBeInstanceOf(AuditConflictError);
      expect(parseEvents((await two.read(conversation)) ?? '')).toHaveLength(1);
    } finally {
      await Promise.all([one.close(), two.close()]);
    }
  });

  it('reports a writer’s conflict and keeps its events queued: written after, nothing lost or doubled', async () => {
    const conversation = 'web:pg-conflict' as ConversationId;
    const log = openLog();
    await log.record(toolCall(conversation, 'before'));
    await log.settle();
    const [first] = await eventsOf(log, conversation);
    // Another writer (one that lost its lock) is appending seq 2 in a transaction not yet committed:
    // our writer reads seq 1 as the head, seals its event as seq 2, and its insert waits on that row.
    const intruder = seal(
      AuditBody.parse({
        id: crypto.randomUUID(),
        time: new Date().toISOString(),
        ...toolCall(conversation, 'intruder'),
      }),
      2,
      first!.hash,
    );
    await sql.query('BEGIN');
    await sql.query(
      `INSERT INTO ${AUDIT_TABLE} (instance, conversation, conversation_key, seq, id, kind, time, event)
       VALUES ($1, $2, $3, 2, $4, 'tool.call', $5, $6)`,
      [
        instance,
        conversation,
        conversationKey(conversation),
        intruder.id,
        intruder.time,
        JSON.stringify(intruder),
      ],
    );
    const before = await failures('write');
    await log.record(toolCall(conversation, 'ours'));
    await expect
      .poll(async () => {
        const { rows } = await sql.query<{ n: string }>(
          `SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`,
          [`sandbot-${instance}-audit`],
        );
        return Number(rows[0]?.n);
      })
      .toBe(1);
    await sql.query('COMMIT');
    await log.settle();
    expect(await failures('write')).toBe(before + 1);
    expect(await log.store.pendingCount(conversation)).toBe(1);
    await log.sweep();
    await log.settle();
    const events = await eventsOf(log, conversation);
    expect(events.map((e) => [e.seq, commandOf(e)])).toEqual([
      [1, 'before'],
      [2, 'intruder'],
      [3, 'ours'],
    ]);
    expect((await verifyAudit(log.journal, log.store, conversation)).map((v) => v.problem)).toEqual([
      undefined,
    ]);
  });

  it('makes its tables on first use, once, and refuses a schema newer than it knows', async () => {
    // A schema of its own (search_path), so the version can be changed without touching the others.
    const schema = `t_${instance.replace(/-/g, '_')}`;
    await sql.query(`CREATE SCHEMA ${schema}`);
    const scoped = new URL(url);
    scoped.searchParams.set('options', `-c search_path=${schema}`);
    const journals = Array.from({ length: 3 }, () => new PgAuditJournal(scoped.toString(), instance));
    try {
      // Three processes starting at once: the advisory lock keeps their CREATE TABLEs apart.
      expect(await Promise.all(journals.map((j) => j.list()))).toEqual([[], [], []]);
      const { rows } = await sql.query(`SELECT component, version FROM ${schema}.sandbot_schema`);
      expect(rows).toEqual([{ component: 'audit', version: 1 }]);
      await sql.query(`UPDATE ${schema}.sandbot_schema SET version = 2 WHERE component = 'audit'`);
      const later = new PgAuditJournal(scoped.toString(), instance);
      journals.push(later);
      await expect(later.list()).rejects.toThrow(
        /are schema v2, newer than this sandbot's v1: upgrade sandbot$/,
      );
    } finally {
      await Promise.all(journals.map((j) => j.close()));
      await sql.query(`DROP SCHEMA ${schema} CASCADE`);
    }
  });

  it('is checked by `sandbot doctor`: reachable and writable, or why not, never with the password', async () => {
    const ok = await checkAuditDatabase(url, instance);
    expect(ok).toMatchObject({ name: 'Audit database', ok: true });
    expect(ok.detail).toMatch(
      /^PostgreSQL \d+\S* at postgresql:\/\/sandbot:\*\*\*@.* can append \(schema v1\)$/,
    );
    // The probe row was rolled back.
    const { rows } = await sql.query(`SELECT 1 FROM ${AUDIT_TABLE} WHERE instance LIKE '%doctor-probe'`);
    expect(rows).toEqual([]);
    const wrong = new URL(url);
    wrong.password = 'not-the-password';
    const refused = await checkAuditDatabase(wrong.toString(), instance);
    expect(refused).toMatchObject({
      ok: false,
      detail: expect.stringMatching(/password authentication failed/),
      fix: 'put the role’s password in SANDBOT_DATABASE_URL',
    });
    expect(refused.detail).not.toContain('not-the-password');
    const closed = await checkAuditDatabase('postgresql://sandbot:pw@127.0.0.1:9/sandbot', instance);
    expect(closed).toMatchObject({ ok: false, fix: expect.stringMatching(/^start PostgreSQL/) });
  });

  it('removes conversations past their retention; one that comes back starts afresh', async () => {
    const log = openLog();
    const old = 'web:pg-old' as ConversationId;
    const fresh = 'web:pg-fresh' as ConversationId;
    for (const c of [old, fresh]) {
      await log.record(toolCall(c, 'hello'));
      await log.record(toolCall(c, 'again'));
    }
    await log.settle();
    await sql.query(
      `UPDATE ${AUDIT_TABLE} SET written_at = now() - interval '91 days' WHERE instance = $1 AND conversation = $2`,
      [instance, old],
    );
    expect(await log.applyRetention()).toBe(1);
    const left = (await log.journal.list()).map((f) => f.key);
    expect(left).toContain(conversationKey(fresh));
    expect(left).not.toContain(conversationKey(old));
    expect(await log.journal.read(old)).toBeUndefined();
    await log.record(toolCall(old, 'back again'));
    await log.settle();
    expect((await eventsOf(log, old)).map((e) => [e.seq, e.prevHash])).toEqual([[1, GENESIS_HASH]]);
    expect((await verifyAudit(log.journal, log.store, old)).map((v) => v.problem)).toEqual([undefined]);
    expect(await log.applyRetention()).toBe(0);
  });
});
