import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { checkAuditDatabase } from '../../src/cli/doctor/database.js';
import { AuditBody, type AuditEvent, type AuditInput } from '../../src/contracts/audit/events.js';
import {
  type ConversationId,
  conversationKey,
  webConversationId,
} from '../../src/contracts/conversation/id.js';
import { createLogger } from '../../src/contracts/log/logger.js';
import { AuditLog } from '../../src/shared/audit/audit-log.js';
import { GENESIS_HASH, seal, verifyChain } from '../../src/shared/audit/chain.js';
import { AuditConflictError, PgAuditJournal } from '../../src/shared/audit/pg-journal.js';
import { AUDIT_TABLE } from '../../src/shared/audit/pg-schema.js';
import { parseEvents } from '../../src/shared/audit/summary.js';
import { verifyAudit } from '../../src/shared/audit/verify.js';
import { sandbotMetrics } from '../../src/shared/metrics.js';
import { dropInstanceKeys, REDIS_URL, testInstance } from '../../testkit/redis.js';
import { describePostgres, dropInstanceRows } from '../helpers/postgres.js';
import { openSse, postMessage } from '../helpers/sse.js';
import { startScriptedStack, testConfig } from '../helpers/stack.js';

/**
 * The audit log in PostgreSQL (SANDBOT_DATABASE_URL) on real Redis and a real database: the chain and
 * its order across writers, the unique (conversation, seq) backstop, verify naming a tampered row, the
 * CLI on another "host" (an empty audit dir) reading what a worker wrote, the replies in `audit show`,
 * and the retention.
 */

const instance = testInstance('audit-pg');
const dirs = { worker: tmpDir('a'), cli: tmpDir('b') };
const run = promisify(execFile);

function tmpDir(label: string): string {
  return mkdtempSync(path.join(tmpdir(), `sandbot-audit-pg-${label}-`));
}

const toolCall = (conversation: ConversationId, command: string, actor: AuditInput['actor'] = 'agent') =>
  ({
    conversation,
    turnId: `${conversation}#1-1`,
    actor,
    kind: 'tool.call',
    data: { name: 'bash', args: { command }, reported: true, ok: true, result: 'ok' },
  }) satisfies AuditInput;

const commandOf = (e: AuditEvent) => String((e.data.args as { command?: string } | undefined)?.command);

describePostgres('the audit log in PostgreSQL', (url) => {
  const config = testConfig(instance, { SANDBOT_AUDIT_DIR: dirs.worker, SANDBOT_DATABASE_URL: url });
  const logger = createLogger(config);
  const connections: Redis[] = [];
  const logs: AuditLog[] = [];
  const sql = new pg.Client({ connectionString: url });

  /** An audit log on its own Redis connection, as another process (or host) would have. */
  const openLog = () => {
    const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
    connections.push(redis);
    const log = new AuditLog(redis, config, logger);
    logs.push(log);
    return log;
  };
  const eventsOf = async (log: AuditLog, conversation: ConversationId) =>
    parseEvents((await log.journal.read(conversation)) ?? '');
  const failures = async (stage: string) =>
    (await sandbotMetrics().auditFailures.get()).values.find((v) => v.labels.stage === stage)?.value ?? 0;

  /** `sandbot …` as its own process, from the sources, on the other "host": its audit dir is empty. */
  const sandbot = (...args: string[]) => sandbotOf(instance, ...args);
  const sandbotOf = (of: string, ...args: string[]) =>
    run(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
      env: {
        ...process.env,
        SANDBOT_INSTANCE: of,
        SANDBOT_REDIS_URL: REDIS_URL,
        SANDBOT_AUDIT_DIR: dirs.cli,
        SANDBOT_DATABASE_URL: url,
        SANDBOT_LOG_LEVEL: 'silent',
      },
    }).then(
      (r) => ({ code: 0, ...r }),
      (e: { code: number; stdout: string; stderr: string }) => e,
    );

  beforeAll(() => sql.connect());
  afterAll(async () => {
    for (const log of logs) await log.stop();
    for (const redis of connections) redis.disconnect();
    await dropInstanceKeys(instance);
    await dropInstanceRows(url, instance);
    await sql.end();
    for (const dir of Object.values(dirs)) rmSync(dir, { recursive: true, force: true });
  });

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

  it('serves `sandbot audit verify|show|export` from another host; verify names a tampered row', async () => {
    const conversation = 'web:pg-cli' as ConversationId;
    const log = openLog();
    for (const command of ['ls', 'cat "a,b"', 'pwd']) await log.record(toolCall(conversation, command));
    await log.record({
      conversation,
      turnId: `${conversation}#1-1`,
      actor: 'agent',
      kind: 'reply',
      data: { messageId: 'r1', chars: 27, text: 'Here is the list:\n- a,b\n- c', files: [] },
    });
    await log.settle();

    const ok = await sandbot('audit', 'verify', conversation);
    expect(ok).toMatchObject({ code: 0 });
    expect(ok.stdout).toMatch(/^ok {6}web:pg-cli {2}4 events$/m);
    const shown = await sandbot('audit', 'show', conversation);
    expect(shown.stdout).toMatch(
      /#2 {2}tool.call {8}agent \[#1-1\] {2}bash \{"command":"cat \\"a,b\\""\} → ok: ok/,
    );
    expect(shown.stdout).toContain(
      '#4  reply            agent [#1-1]  27 chars: Here is the list: - a,b - c\n',
    );
    expect(shown.stdout).toContain('    │ Here is the list:\n    │ - a,b\n    │ - c\n');
    const jsonl = await sandbot('audit', 'export', conversation);
    expect(jsonl.stdout).toBe(await log.journal.read(conversation));
    const csv = await sandbot('audit', 'export', conversation, '--format', 'csv');
    expect(csv.stdout.split('\r\n')[2]).toContain('"{""args"":{""command"":""cat \\""a,b\\""""}');
    expect(readdirSync(dirs.cli)).toEqual([]);

    const [, , third] = await eventsOf(log, conversation);
    await sql.query(
      `UPDATE ${AUDIT_TABLE} SET event = replace(event, '"pwd"', '"rm -rf /"') WHERE instance = $1 AND conversation = $2 AND seq = 3`,
      [instance, conversation],
    );
    const edited = await sandbot('audit', 'verify', conversation);
    expect(edited.code).toBe(1);
    expect(edited.stdout).toContain(
      `BROKEN  web:pg-cli  ${log.journal.fileOf(conversation)} seq 3 (event ${third!.id}): content does not match its hash (the event was edited)`,
    );
    // All conversations of the instance, as `verify` without one lists them.
    const all = await sandbot('audit', 'verify');
    expect(all.code).toBe(1);
    expect(all.stdout).toMatch(/^ok {6}web:pg-shared {2}100 events$/m);
    expect(all.stdout).toMatch(/^BROKEN {2}web:pg-cli .* seq 3 /m);
    // The last row deleted: the chain itself holds, the head Redis remembers does not.
    await sql.query(`DELETE FROM ${AUDIT_TABLE} WHERE instance = $1 AND conversation = $2 AND seq >= 3`, [
      instance,
      conversation,
    ]);
    const cut = await sandbot('audit', 'verify', conversation);
    expect(cut.code).toBe(1);
    expect(cut.stdout).toContain('ends at seq 2 but seq 4 was written: the last 2 events are missing');
    expect(await sandbot('audit', 'show', 'web:pg-nothing')).toMatchObject({
      code: 1,
      stderr: expect.stringMatching(
        /no audit log for web:pg-nothing \(looked for postgresql:\/\/sandbot:\*\*\*@/,
      ),
    });
  });

  it('says when the database cannot be reached, exit 1', async () => {
    const result = await run(
      process.execPath,
      ['--import', 'tsx', 'src/cli/main.ts', 'audit', 'export', 'web:x'],
      {
        env: {
          ...process.env,
          SANDBOT_INSTANCE: instance,
          SANDBOT_REDIS_URL: REDIS_URL,
          SANDBOT_DATABASE_URL: 'postgresql://sandbot:wrong@127.0.0.1:9/sandbot',
          SANDBOT_LOG_LEVEL: 'silent',
        },
      },
    ).catch((e: { code: number; stderr: string }) => e);
    expect(result).toMatchObject({ code: 1 });
    expect((result as { stderr: string }).stderr).toMatch(
      /^sandbot: cannot read the audit log in postgresql:\/\/sandbot:\*\*\*@127\.0\.0\.1:9\/sandbot .*ECONNREFUSED/m,
    );
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
  it('records a real turn’s reply on one host; the CLI on another shows what the user read', async () => {
    const other = testInstance('audit-pg-turn');
    const worker = tmpDir('turn');
    const stackConfig = testConfig(other, { SANDBOT_AUDIT_DIR: worker, SANDBOT_DATABASE_URL: url });
    const answer = 'Two things:\n1. the list\n2. the sum';
    const stack = await startScriptedStack(stackConfig, () => ({ reply: answer }));
    try {
      const sse = await openSse(`${stack.url}/api/conversations/pg-turn/events`);
      try {
        await postMessage(stack.url, 'pg-turn', 'what do you have?');
        const reply = await sse.waitFor((e) => e.type === 'reply' || e.type === 'error');
        expect(reply).toMatchObject({ type: 'reply', text: answer });
      } finally {
        sse.close();
      }
      const conversation = webConversationId('pg-turn');
      await expect
        .poll(
          async () => parseEvents((await stack.worker.audit.journal.read(conversation)) ?? '').at(-1)?.kind,
          {
            timeout: 20_000,
          },
        )
        .toBe('turn.finished');
      expect(readdirSync(worker)).toEqual([]);
      const shown = await sandbotOf(other, 'audit', 'show', conversation);
      expect(shown.code).toBe(0);
      expect(shown.stdout).toMatch(/ {2}message.received +user:web:tester {2}\d+ chars\n/);
      expect(shown.stdout).toMatch(
        / {2}reply +agent \[#\S+\] {2}34 chars: Two things: 1\. the list 2\. the sum\n/,
      );
      expect(shown.stdout).toContain('    │ Two things:\n    │ 1. the list\n    │ 2. the sum\n');
      const verified = await sandbotOf(other, 'audit', 'verify');
      expect(verified).toMatchObject({ code: 0 });
      expect(verified.stdout).toMatch(/^ok {6}web:pg-turn {2}\d+ events$/m);
    } finally {
      await stack.stop();
      await dropInstanceRows(url, other);
      rmSync(worker, { recursive: true, force: true });
    }
  });
});
