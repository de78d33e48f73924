import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { AuditBody, type AuditEvent, type AuditInput } from '../../src/contracts/audit/events.js';
import { type ConversationId, conversationKey } from '../../src/contracts/conversation/id.js';
import { createLogger } from '../../src/contracts/log/logger.js';
import { auditKeys } from '../../src/contracts/redis/keys.js';
import { AuditLog } from '../../src/shared/audit/audit-log.js';
import { GENESIS_HASH, seal, verifyChain } from '../../src/shared/audit/chain.js';
import { verifyAudit } from '../../src/shared/audit/verify.js';
import { sandbotMetrics } from '../../src/shared/metrics.js';
import { dropInstanceKeys, REDIS_URL, testInstance } from '../../testkit/redis.js';
import { toolCall } from '../helpers/audit-events.js';
import { testConfig } from '../helpers/stack.js';

/** The audit store on real Redis and a real directory: ordering across writers, recovery, retention, CLI. */

const dir = mkdtempSync(path.join(tmpdir(), 'sandbot-audit-'));
const config = testConfig(testInstance('audit-store'), { SANDBOT_AUDIT_DIR: dir });
const logger = createLogger(config);
const connections: Redis[] = [];
const logs: AuditLog[] = [];

/** An audit log on its own connection, as another process would have. */
function openLog(overrides: Partial<typeof config> = {}): AuditLog {
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  connections.push(redis);
  const log = new AuditLog(redis, { ...config, ...overrides }, logger);
  logs.push(log);
  return log;
}

const eventsOf = (log: AuditLog, conversation: ConversationId): AuditEvent[] =>
  readFileSync(log.journal.fileOf(conversation), 'utf8')
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as AuditEvent);

const run = promisify(execFile);
const env = {
  ...process.env,
  SANDBOT_INSTANCE: config.SANDBOT_INSTANCE,
  SANDBOT_AUDIT_DIR: dir,
  SANDBOT_REDIS_URL: REDIS_URL,
};
const sandbot = (...args: string[]) =>
  run(process.execPath, ['dist/src/cli/main.js', ...args], { env }).then(
    (r) => ({ code: 0, ...r }),
    (e: { code: number; stdout: string; stderr: string }) => e,
  );

afterAll(async () => {
  for (const log of logs) await log.stop();
  for (const redis of connections) redis.disconnect();
  await dropInstanceKeys(config.SANDBOT_INSTANCE);
  rmSync(dir, { recursive: true, force: true });
});

describe('the audit store', () => {
  it('chains events from several writers into one order, each writer’s in its own order', async () => {
    const conversation = 'web:shared' as ConversationId;
    const [a, b] = [openLog(), openLog()];
    const recorded = [];
    for (let i = 0; i < 60; i++) {
      recorded.push(a.record(toolCall(conversation, `a${i}`)));
      recorded.push(b.record(toolCall(conversation, `b${i}`, 'worker:w-b')));
    }
    await Promise.all(recorded);
    await Promise.all([a.settle(), b.settle()]);
    const text = readFileSync(a.journal.fileOf(conversation), 'utf8');
    expect(verifyChain(text, conversationKey(conversation))).toMatchObject({ events: 120, lastSeq: 120 });
    const commands = eventsOf(a, conversation).map((e) =>
      String((e.data.args as { command: string }).command),
    );
    expect(commands.filter((c) => c.startsWith('a'))).toEqual(Array.from({ length: 60 }, (_, i) => `a${i}`));
    expect(commands.filter((c) => c.startsWith('b'))).toEqual(Array.from({ length: 60 }, (_, i) => `b${i}`));
    // The live stream carries the same sealed events.
    const entries = await connections[0]!.xrange(auditKeys(config.SANDBOT_INSTANCE).stream, '-', '+');
    const streamed = entries.map(
      ([, fields]) => JSON.parse(fields[fields.indexOf('event') + 1]!) as AuditEvent,
    );
    expect(streamed.filter((e) => e.conversation === conversation).map((e) => e.hash)).toEqual(
      eventsOf(a, conversation).map((e) => e.hash),
    );
    expect(await a.store.pendingCount(conversation)).toBe(0);
  });

  it('finishes the work of a writer that died mid-append, writing nothing twice', async () => {
    const conversation = 'web:crash' as ConversationId;
    const log = openLog();
    await log.record(toolCall(conversation, 'before'));
    await log.settle();
    // A writer queued three events, appended two and half of the third, then died before committing.
    const bodies = ['x1', 'x2', 'x3'].map((command, n) =>
      AuditBody.parse({
        id: `00000000-0000-4000-8000-00000000000${n}`,
        time: new Date().toISOString(),
        ...toolCall(conversation, command),
      }),
    );
    for (const body of bodies) await log.store.push(body);
    const [first] = eventsOf(log, conversation);
    const x1 = seal(bodies[0]!, 2, first!.hash);
    const x2 = seal(bodies[1]!, 3, x1.hash);
    const file = log.journal.fileOf(conversation);
    writeFileSync(
      file,
      `${readFileSync(file, 'utf8')}${JSON.stringify(x1)}\n${JSON.stringify(x2)}\n{"id":"half`,
    );
    await log.sweep();
    await log.settle();
    const events = eventsOf(log, conversation);
    expect(events.map((e) => (e.data.args as { command: string }).command)).toEqual([
      'before',
      'x1',
      'x2',
      'x3',
    ]);
    expect(verifyChain(readFileSync(file, 'utf8')).broken).toBeUndefined();
  });

  it('tells from Redis when events were cut off the end of a file', async () => {
    const conversation = 'web:cut' as ConversationId;
    const log = openLog();
    for (const command of ['one', 'two', 'three']) await log.record(toolCall(conversation, command));
    await log.settle();
    const file = log.journal.fileOf(conversation);
    const lines = readFileSync(file, 'utf8').split('\n');
    writeFileSync(file, `${lines.slice(0, 2).join('\n')}\n`);
    const [verdict] = await verifyAudit(log.journal, log.store, conversation);
    expect(verdict?.report.broken).toBeUndefined();
    expect(verdict?.problem).toBe(
      `${file}: ends at seq 2 but seq 3 was written: the last 1 event is missing`,
    );
  });

  it('never throws into the caller, and counts what it could not record', async () => {
    const log = openLog();
    const failures = async () =>
      (await sandbotMetrics().auditFailures.get()).values.find((v) => v.labels.stage === 'invalid')?.value ??
      0;
    const before = await failures();
    const bad = { ...toolCall('web:bad' as ConversationId, 'x'), actor: 'root' } as unknown as AuditInput;
    await expect(log.record(bad)).resolves.toBeUndefined();
    expect(await failures()).toBe(before + 1);
  });

  it('removes files past their retention; the conversation’s chain then starts afresh', async () => {
    const log = openLog();
    const old = 'web:old' as ConversationId;
    const fresh = 'web:fresh' as ConversationId;
    for (const c of [old, fresh]) await log.record(toolCall(c, 'hello'));
    await log.settle();
    const past = new Date(Date.now() - 91 * 86_400_000);
    utimesSync(log.journal.fileOf(old), past, past);
    expect(await log.applyRetention()).toBe(1);
    const left = (await log.journal.list()).map((f) => f.key);
    expect(left).toContain(conversationKey(fresh));
    expect(left).not.toContain(conversationKey(old));
    await log.record(toolCall(old, 'back again'));
    await log.settle();
    expect(eventsOf(log, old).map((e) => [e.seq, e.prevHash])).toEqual([[1, GENESIS_HASH]]);
    expect((await verifyAudit(log.journal, log.store, old)).map((v) => v.problem)).toEqual([undefined]);
  });
});

describe('sandbot audit (the CLI)', () => {
  const conversation = 'web:cli-audit' as ConversationId;

  it('verifies, shows and exports; verify names an edited and a deleted line, exit 1', async () => {
    const log = openLog();
    for (const command of ['ls', 'cat "a,b"', 'pwd']) await log.record(toolCall(conversation, command));
    await log.settle();
    const ok = await sandbot('audit', 'verify', conversation);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/^ok {6}web:cli-audit {2}3 events$/m);
    const shown = await sandbot('audit', 'show', conversation);
    expect(shown.stdout).toMatch(
      /#2 {2}tool.call {8}agent \[#1-1\] {2}bash \{"command":"cat \\"a,b\\""\} → ok: ok/,
    );
    const csv = await sandbot('audit', 'export', conversation, '--format', 'csv');
    expect(csv.stdout.split('\r\n')[2]).toContain('"{""args"":{""command"":""cat \\""a,b\\""""}');
    const jsonl = await sandbot('audit', 'export', conversation);
    const file = log.journal.fileOf(conversation);
    const original = readFileSync(file, 'utf8');
    expect(jsonl.stdout).toBe(original);

    writeFileSync(file, original.replace('"pwd"', '"rm -rf /"'));
    const edited = await sandbot('audit', 'verify', conversation);
    expect(edited.code).toBe(1);
    expect(edited.stdout).toContain(
      `BROKEN  web:cli-audit  ${file} line 3 (seq 3): content does not match its hash (the event was edited)`,
    );
    const lines = original.split('\n');
    writeFileSync(file, [lines[0], lines[2], ''].join('\n'));
    const deleted = await sandbot('audit', 'verify');
    expect(deleted.code).toBe(1);
    expect(deleted.stdout).toContain(`${file} line 2 (seq 3): seq 2 missing (deleted events)`);
    writeFileSync(file, original);

    expect(await sandbot('audit', 'show', 'not a conversation')).toMatchObject({ code: 2 });
    expect(await sandbot('audit', 'show', 'web:nothing-here')).toMatchObject({
      code: 1,
      stderr: /no audit log for web:nothing-here/,
    });
  });

  it('tails the live stream, filtered by conversation and kind', async () => {
    const log = openLog();
    const tail = spawn(
      process.execPath,
      ['dist/src/cli/main.js', 'audit', 'tail', '--conversation', conversation, '--kind', 'tool.call'],
      { env },
    );
    let out = '';
    let err = '';
    tail.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    tail.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    const until = async (what: () => boolean, label: string) => {
      for (let i = 0; i < 200 && !what(); i++) await new Promise((r) => setTimeout(r, 50));
      if (!what()) throw new Error(`tail never showed ${label}: ${out} ${err}`);
    };
    try {
      await until(() => err.includes('tailing'), 'its banner');
      await log.record({
        conversation,
        actor: 'worker:w-1',
        kind: 'limit.hit',
        data: { limit: 'turn_timeout' },
      });
      await log.record(toolCall('web:elsewhere' as ConversationId, 'not this one'));
      await log.record(toolCall(conversation, 'live-one'));
      await until(() => out.includes('live-one'), 'the tool call');
      expect(out.trim().split('\n')).toHaveLength(1);
      expect(out).toMatch(/^web:cli-audit {2}\S+ {2}#\d+ {2}tool.call/);
    } finally {
      tail.kill('SIGINT');
    }
    const code = await new Promise((resolve) => tail.on('exit', resolve));
    expect(code).toBe(0);
  });
});
