import { createHash } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { type AddressInfo, connect, createServer, type Server } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ConversationId, webConversationId } from '../../src/contracts/conversation/id.js';
import { AuditJournal } from '../../src/shared/audit/journal.js';
import { parseEvents, summarizeConversation } from '../../src/shared/audit/summary.js';
import { verifyAudit } from '../../src/shared/audit/verify.js';
import type { FakeChatRequest, FakeStep } from '../../testkit/fakes/fake-ollama.js';
import { cleanInstance } from '../../testkit/instance.js';
import { testInstance } from '../../testkit/redis.js';
import { openSse, postMessage } from '../helpers/sse.js';
import { type ScriptedStack, startScriptedStack, startStack, testConfig } from '../helpers/stack.js';

/**
 * The audit log of real turns: gateway, queue, worker, a real sandbox and the fake Ollama. File changes
 * come from the engine's view of /workspace, tool calls from the model's answers.
 * net.request events are not here: the egress proxy records them (its own tests cover that).
 */

const MODEL = 'qwen2.5:7b';
const dir = mkdtempSync(path.join(tmpdir(), 'sandbot-audit-e2e-'));
const config = testConfig(testInstance('audit-e2e'), { SANDBOT_AUDIT_DIR: dir, SANDBOT_MODEL: MODEL });
const journal = new AuditJournal(dir, config.SANDBOT_INSTANCE);
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

const SETUP = 'printf x > change.txt && printf y > remove.txt && printf z > keep.txt';
const WORK = 'printf changed > change.txt && rm remove.txt && mkdir -p sub && printf new > sub/new.txt';
/**
 * What the agent tries in order to reach the audit log: its files anywhere, and Redis (its port, and a
 * stand-in listening on every host address, as a Redis bound beyond loopback would) on every address.
 */
const probe = (port: number) =>
  [
    'touch /workspace/own-probe.jsonl', // proves the search would find one
    "find / \\( -path /proc -o -path /sys \\) -prune -o \\( -name '*.jsonl' -o -name 'audit-canary*' \\) -print 2>/dev/null",
    'echo FIND-DONE',
    `for host in ${PROBED.join(' ')}; do`,
    `  for port in 6379 ${port}; do`,
    '    if timeout 3 bash -c "exec 3<>/dev/tcp/$host/$port" 2>/dev/null; then echo "REACHED $host:$port"; else echo "BLOCKED $host:$port"; fi',
    '  done',
    'done',
  ].join('\n');
/**
 * Where the agent looks: loopback, the usual bridge gateway, a documentation address, and every IPv4
 * address the host has (its own network's among them).
 */
const HOST_IPV4 = Object.values(networkInterfaces())
  .flatMap((addresses) => addresses ?? [])
  .filter((a) => a.family === 'IPv4' && !a.internal)
  .map((a) => a.address);
const PROBED = [...new Set(['127.0.0.1', '172.17.0.1', '192.0.2.2', ...HOST_IPV4])];
/** The stand-in for a Redis that listens on every host address. */
let exposed: Server;

function script(request: FakeChatRequest): FakeStep {
  const last = request.messages.at(-1);
  if (last?.role === 'tool') return { reply: `done: ${last.content}` };
  const text = last?.content ?? '';
  if (text.includes('setup')) return { toolCalls: [{ name: 'bash', arguments: { command: SETUP } }] };
  if (text.includes('work')) {
    return {
      toolCalls: [
        { name: 'bash', arguments: { command: WORK } },
        { name: 'write_file', arguments: { path: 'notes.md', content: '# notes\n' } },
      ],
    };
  }
  if (text.includes('probe')) {
    const { port } = exposed.address() as AddressInfo;
    return { toolCalls: [{ name: 'bash', arguments: { command: probe(port) } }] };
  }
  return { reply: 'ok' };
}

let stack: ScriptedStack;

beforeAll(async () => {
  exposed = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => exposed.listen(0, '0.0.0.0', resolve));
  stack = await startScriptedStack(config, script);
});

afterAll(async () => {
  await stack?.stop();
  exposed?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Sends a message, waits for the reply, then for the turn's last audit event to be written. */
async function turn(session: string, text: string): Promise<string> {
  const sse = await openSse(`${stack.url}/api/conversations/${session}/events`);
  try {
    await postMessage(stack.url, session, text);
    const reply = await sse.waitFor((e) => e.type === 'reply' || e.type === 'error');
    const conversation = webConversationId(session);
    for (let i = 0; i < 100; i++) {
      const events = parseEvents((await journal.read(conversation)) ?? '');
      if (events.at(-1)?.kind === 'turn.finished' && events.at(-1)?.turnId === reply.turnId) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    return reply.type === 'reply' ? reply.text : `error: ${reply.type === 'error' ? reply.message : ''}`;
  } finally {
    sse.close();
  }
}

describe('the audit log of real turns', () => {
  const conversation: ConversationId = webConversationId('audited');

  it('records a turn’s message, model calls, tool calls and file changes, exactly and in order', async () => {
    expect(await turn('audited', 'setup please')).toContain('done:');
    const replied = await turn('audited', 'now work');
    expect(replied).toContain('done:');
    const events = parseEvents((await journal.read(conversation)) ?? '');
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    const from = events.map((e) => e.kind).lastIndexOf('message.received');
    const work = events.slice(from);
    const summary = work.map((e) => {
      const d = e.data as Record<string, unknown>;
      const actor = e.actor.startsWith('worker:') ? 'worker' : e.actor;
      const detail =
        e.kind === 'model.response'
          ? (d.toolCalls as string[]).join(',') || '-'
          : e.kind === 'tool.call'
            ? `${d.name} ${d.ok ? 'ok' : 'failed'}`
            : e.kind === 'tool.started'
              ? d.name
              : e.kind.startsWith('file.')
                ? d.path
                : e.kind === 'turn.finished'
                  ? d.outcome
                  : '';
      return `${e.kind} ${actor} ${detail}`.trim();
    });
    expect(summary).toEqual([
      'message.received user:web:tester',
      'turn.started worker',
      'model.request worker',
      'model.response worker bash,write_file',
      'tool.started agent bash',
      'tool.started agent write_file',
      'tool.call agent bash ok',
      'tool.call agent write_file ok',
      'model.request worker',
      'model.response worker -',
      'reply agent',
      'file.changed agent /workspace/change.txt',
      'file.created agent /workspace/notes.md',
      'file.deleted agent /workspace/remove.txt',
      'file.created agent /workspace/sub/new.txt',
      'turn.finished worker replied',
    ]);
    const [received, started, , response] = work;
    expect(received?.data).toMatchObject({ platform: 'web', userName: 'tester', chars: 'now work'.length });
    expect(received?.data.text).toBeUndefined(); // content is off by default
    expect(work.slice(1).every((e) => e.turnId === started?.turnId)).toBe(true);
    expect(response?.data).toMatchObject({ model: MODEL, ok: true, promptTokens: expect.any(Number) });
    expect(work[4]?.data).toMatchObject({ args: { command: WORK } });
    expect(work[6]?.data).toMatchObject({ args: { command: WORK }, reported: true });
    const byPath = Object.fromEntries(
      work.filter((e) => e.kind.startsWith('file.')).map((e) => [e.data.path, e.data]),
    );
    expect(byPath['/workspace/notes.md']).toMatchObject({
      size: 8,
      sha256: sha256('# notes\n'),
      hashed: true,
    });
    expect(byPath['/workspace/change.txt']).toMatchObject({
      size: 7,
      sha256: sha256('changed'),
      previous: { size: 1, sha256: sha256('x') },
    });
    expect(work.at(-1)?.data).toMatchObject({ modelCalls: 2, toolCalls: 2, filesChanged: 4 });
    // What the user read is on record, whatever SANDBOT_AUDIT_CONTENT says (it is off here).
    expect(work.find((e) => e.kind === 'reply')?.data).toEqual({
      messageId: `${started?.turnId}:reply`,
      chars: replied.length,
      text: replied,
      files: [],
    });
    // The first turn created the sandbox; that is on record too.
    expect(events.slice(0, from).map((e) => e.kind)).toEqual(
      expect.arrayContaining(['sandbox.create', 'sandbox.start', 'file.created']),
    );
  });

  it('verifies the chain, and names an edited and a deleted line', async () => {
    const ok = await verifyAudit(journal, stack.worker.audit.store, conversation);
    expect(ok.map((v) => v.problem)).toEqual([undefined]);
    expect(ok[0]?.report.events).toBeGreaterThan(20);
    const file = journal.fileOf(conversation);
    const backup = `${file}.bak`;
    copyFileSync(file, backup);
    try {
      const lines = readFileSync(backup, 'utf8').split('\n');
      const at = lines.findIndex((l) => l.includes('"file.deleted"'));
      writeFileSync(
        file,
        [
          ...lines.slice(0, at),
          lines[at]!.replace('remove.txt', 'harmless.txt'),
          ...lines.slice(at + 1),
        ].join('\n'),
      );
      const [edited] = await verifyAudit(journal, undefined, conversation);
      expect(edited?.problem).toBe(
        `${file} line ${at + 1} (seq ${at + 1}): content does not match its hash (the event was edited)`,
      );
      writeFileSync(file, [...lines.slice(0, at), ...lines.slice(at + 1)].join('\n'));
      const [deleted] = await verifyAudit(journal, undefined, conversation);
      expect(deleted?.problem).toBe(
        `${file} line ${at + 1} (seq ${at + 2}): seq ${at + 1} missing (deleted events)`,
      );
    } finally {
      copyFileSync(backup, file);
      rmSync(backup);
    }
  });

  it('summarizes the recent activity for `status`', async () => {
    const summary = await summarizeConversation(journal, conversation);
    expect(summary).toMatchObject({
      turns: 2,
      lastTurn: { outcome: 'replied' },
      tools: { bash: 2, write_file: 1 },
      files: { created: 5, changed: 1, deleted: 1 },
      network: { allowed: 0, refused: 0 },
    });
  });

  it('keeps the audit files and stream out of the agent’s reach', async () => {
    // A canary in the audit directory, and proof that the stand-in answers on the host's own address.
    writeFileSync(path.join(dir, 'audit-canary.jsonl'), '{}\n');
    const { port } = exposed.address() as AddressInfo;
    expect(HOST_IPV4.length).toBeGreaterThan(0);
    const socket = connect(port, HOST_IPV4[0] as string);
    const reachable = await new Promise<boolean>((resolve) => {
      socket.on('connect', () => resolve(true));
      socket.on('error', () => resolve(false));
      socket.setTimeout(3000, () => resolve(false));
    }).finally(() => socket.destroy());
    expect(reachable).toBe(true);
    const text = await turn('prober', 'probe the place');
    expect(text).toContain('FIND-DONE');
    const found = text.split('\n').filter((line) => line.includes('.jsonl') || line.includes('audit-canary'));
    expect(found).toEqual(['/workspace/own-probe.jsonl']);
    expect(text).not.toContain('audit-canary');
    for (const host of PROBED) {
      for (const target of [6379, port]) expect(text).toContain(`BLOCKED ${host}:${target}`);
    }
    expect(text).not.toContain('REACHED');
  });
});

describe('with SANDBOT_AUDIT_CONTENT=true', () => {
  const contentDir = mkdtempSync(path.join(tmpdir(), 'sandbot-audit-content-'));
  const contentConfig = testConfig(testInstance('audit-content'), {
    SANDBOT_AUDIT_DIR: contentDir,
    SANDBOT_AUDIT_CONTENT: 'true',
    SANDBOT_MODEL: MODEL,
  });
  let contentStack: Awaited<ReturnType<typeof startStack>>;

  beforeAll(async () => {
    Object.assign(contentConfig, { OLLAMA_HOST: stack.ollama.url });
    contentStack = await startStack(contentConfig);
  });

  afterAll(async () => {
    await contentStack?.stop();
    await cleanInstance(contentConfig);
    rmSync(contentDir, { recursive: true, force: true });
  });

  it('records the message text and the model’s input and answers too', async () => {
    const sse = await openSse(`${contentStack.url}/api/conversations/verbose/events`);
    try {
      await postMessage(contentStack.url, 'verbose', 'setup, and say what you did');
      await sse.waitFor((e) => e.type === 'reply');
    } finally {
      sse.close();
    }
    const contentJournal = new AuditJournal(contentDir, contentConfig.SANDBOT_INSTANCE);
    const conversation = webConversationId('verbose');
    let events = parseEvents((await contentJournal.read(conversation)) ?? '');
    for (let i = 0; i < 100 && events.at(-1)?.kind !== 'turn.finished'; i++) {
      await new Promise((r) => setTimeout(r, 100));
      events = parseEvents((await contentJournal.read(conversation)) ?? '');
    }
    const of = (kind: string) => events.filter((e) => e.kind === kind).map((e) => e.data);
    expect(of('message.received')[0]?.text).toBe('setup, and say what you did');
    const [first, second] = of('model.request');
    expect(first?.content).toEqual([
      { role: 'user', content: expect.stringContaining('setup, and say what you did') },
    ]);
    expect(second?.content).toEqual([
      { role: 'tool', tool: 'bash', content: expect.stringContaining('exit code 0') },
    ]);
    expect(of('model.response')[1]?.content).toMatch(/^done: /);
  });
});
