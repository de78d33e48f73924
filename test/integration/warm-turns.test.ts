import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDocker } from '../../sandbox/host/driver/docker-client.js';
import { sandboxNames } from '../../sandbox/host/driver/docker-spec.js';
import { sandboxDriverFromConfig } from '../../sandbox/host/driver/from-config.js';
import { type ConversationId, webConversationId } from '../../src/contracts/conversation/id.js';
import type { OutboundEvent } from '../../src/contracts/protocol/outbound.js';
import { AuditJournal } from '../../src/shared/audit/journal.js';
import { parseEvents } from '../../src/shared/audit/summary.js';
import { testInstance } from '../../testkit/redis.js';
import { shellModel, turnEnd } from '../helpers/shell-model.js';
import { type ScriptedStack, startScriptedStack, testConfig } from '../helpers/stack.js';

/**
 * Warm turns start from the workspace snapshot the previous turn kept, and plant the canary only when
 * it is not as planted. What must not change: every file change of a turn is in the audit log under
 * that turn, the canary is in place (as planted) whenever the agent runs, and outbox files come back.
 */

const dir = mkdtempSync(path.join(tmpdir(), 'sandbot-warm-audit-'));
const config = testConfig(testInstance('warm'), { SANDBOT_AUDIT_DIR: dir });
const journal = new AuditJournal(dir, config.SANDBOT_INSTANCE);
const driver = sandboxDriverFromConfig(config);
const session = 'warm';
const conversation = webConversationId(session);
const CANARY = '/workspace/.aws/credentials';
let stack: ScriptedStack;

/** The shell model, except that a message starting "say:" is answered at once, with no tool call. */
const model: typeof shellModel = (request) => {
  const last = request.messages.at(-1);
  if (last?.role === 'user' && last.content.startsWith('say:')) return { reply: last.content.slice(4) };
  return shellModel(request);
};

beforeAll(async () => {
  stack = await startScriptedStack(config, model);
});

afterAll(async () => {
  await stack?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Runs one turn; returns how it ended and the file changes the audit log recorded for it. */
async function turn(command: string): Promise<{ end: OutboundEvent; files: string[] }> {
  const end = await turnEnd(stack.url, session, command);
  for (let i = 0; i < 100; i++) {
    const events = parseEvents((await journal.read(conversation)) ?? '');
    if (events.some((e) => e.kind === 'turn.finished' && e.turnId === end.turnId)) {
      const files = events
        .filter((e) => e.turnId === end.turnId && e.kind.startsWith('file.'))
        .map((e) => `${e.kind.slice(5)} ${String(e.data.path).replace('/workspace/', '')}`);
      return { end, files };
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`turn ${end.turnId} never finished in the audit log`);
}

/** Waits for the start of the next whole second (the engine stamps its events in whole seconds). */
async function nextSecond(): Promise<number> {
  await new Promise((r) => setTimeout(r, 1000 - (Date.now() % 1000) + 10));
  return Math.floor(Date.now() / 1000);
}

/** The engine's archive reads and writes on the conversation's sandbox since `since` (seconds). */
async function archiveEvents(of: ConversationId, since: number): Promise<{ Action: string }[]> {
  const stream = await createDocker(config.DOCKER_HOST).getEvents({
    since,
    until: Math.ceil(Date.now() / 1000) + 1,
    filters: {
      container: [sandboxNames(config.SANDBOT_INSTANCE, of).container],
      event: ['archive-path', 'extract-to-dir'],
    },
  });
  let raw = '';
  for await (const chunk of stream) raw += String(chunk);
  return raw
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as { Action: string });
}

/** Turns of the conversation the audit log has seen finish. */
async function auditedTurns(session: string): Promise<number> {
  const events = parseEvents((await journal.read(webConversationId(session))) ?? '');
  return events.filter((e) => e.kind === 'turn.finished').length;
}

async function eventually(check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 100 && !(await check()); i++) await new Promise((r) => setTimeout(r, 50));
}

const text = (end: OutboundEvent) => (end.type === 'reply' ? end.text : JSON.stringify(end));
const canary = async () => (await driver.snapshotWorkspace(conversation)).entries[CANARY];

describe('warm turns', () => {
  it('record every file change under the turn that made it, without planting the canary again', async () => {
    expect((await turn('echo one > f1.txt')).files).toEqual(['created f1.txt']);
    const planted = await canary();
    expect(planted).toMatchObject({ type: 'file', mode: 0o600 });
    // Archive times are whole seconds: a second later, planting again would show.
    await new Promise((r) => setTimeout(r, 1100));
    expect((await turn('echo two > f2.txt; echo changed > f1.txt')).files).toEqual([
      'changed f1.txt',
      'created f2.txt',
    ]);
    expect((await turn('rm f1.txt; mkdir -p d; echo x > d/x.txt')).files).toEqual([
      'created d/x.txt',
      'deleted f1.txt',
    ]);
    expect(await canary()).toEqual(planted);
  });

  it('plants the canary again before the next turn when the agent deleted, changed or hid it', async () => {
    // Deleted (the folder with it): the deletion is the agent's doing; planting it again is not.
    expect((await turn('rm -r ~/.aws')).files).toEqual(['deleted .aws/credentials']);
    const again = await turn('stat -c "%a %s" ~/.aws/cred*');
    expect(again.files).toEqual([]);
    expect(text(again.end)).toMatch(/\n600 \d+/);
    // Overwritten with the same size.
    const size = (await canary())?.size ?? 0;
    expect((await turn(`head -c ${size} /dev/zero > ~/.aws/cred* && echo done`)).files).toEqual([
      'changed .aws/credentials',
    ]);
    expect(text((await turn('tr -d "\\0" < ~/.aws/cred* | wc -c')).end)).toMatch(new RegExp(`\n${size}$`));
    // Made readable by others, or its folder unreadable: the content is the same, the modes are not.
    await turn('chmod 644 ~/.aws/cred*');
    expect(text((await turn('stat -c %a ~/.aws/cred*')).end)).toMatch(/\n600$/);
    await turn('chmod 000 ~/.aws');
    expect(text((await turn('stat -c %a ~/.aws')).end)).toMatch(/\n700$/);
  });

  it('leaves nothing running between turns that could change the workspace unrecorded', async () => {
    const started = await turn('(sleep 1; echo late > late.txt) >/dev/null 2>&1 & echo started');
    expect(text(started.end)).toContain('started');
    await new Promise((r) => setTimeout(r, 1500));
    const next = await turn('ls late.txt');
    expect(text(next.end)).toContain('No such file or directory');
    expect(next.files).toEqual([]);
  });

  it('hands back outbox files from the turn that wrote them, and only then', async () => {
    const wrote = await turn('echo report > outbox/report.txt');
    expect(wrote.files).toEqual(['created outbox/report.txt']);
    expect(wrote.end.type === 'reply' && wrote.end.files?.map((f) => f.name)).toEqual(['report.txt']);
    const quiet = await turn('echo nothing new');
    expect(quiet.end.type === 'reply' && (quiet.end.files ?? [])).toEqual([]);
  });

  it('reads /workspace once in a new sandbox’s turn that ran nothing (the start’s snapshot is the end’s)', async () => {
    const fresh = 'warm-fresh';
    const since = await nextSecond();
    expect(text(await turnEnd(stack.url, fresh, 'say:hello'))).toBe('hello');
    await eventually(async () => (await auditedTurns(fresh)) === 1);
    const reads = await archiveEvents(webConversationId(fresh), since);
    expect(reads.map((e) => e.Action)).toEqual(['archive-path']);
  });

  it('reads nothing through the engine in a turn that ran nothing, and the next turn records as before', async () => {
    await turn('echo a > a.txt');
    const since = await nextSecond();
    const quiet = await turn('say:nothing to run');
    expect(text(quiet.end)).toBe('nothing to run');
    expect(quiet.files).toEqual([]);
    // The engine's record of archive reads and writes on this sandbox during that turn: none (no
    // snapshot at its end, no outbox read; its start used the kept snapshot).
    expect(await archiveEvents(conversation, since)).toEqual([]);
    // The snapshot kept through the quiet turn is still the workspace: the next change is recorded.
    expect((await turn('echo b > b.txt')).files).toEqual(['created b.txt']);
  });

  it('trips the canary in a warm turn that reads it', async () => {
    const end = (await turn('cat ~/.aws/cred*')).end;
    expect(end.type === 'error' && end.message).toMatch(
      /the agent read the canary credentials file; by tripwire/,
    );
  });
});
