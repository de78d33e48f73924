import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sandboxDriverFromConfig } from '../../sandbox/host/driver/from-config.js';
import type { Config } from '../../src/contracts/config/schema.js';
import { ConversationId } from '../../src/contracts/conversation/id.js';
import { grantsFromRules } from '../../src/contracts/policy/network-policy.js';
import { AuditJournal } from '../../src/shared/audit/journal.js';
import { parseEvents } from '../../src/shared/audit/summary.js';
import { NetworkPolicyStore } from '../../src/shared/stores/policy-store.js';
import type { FakeChatRequest, FakeOllama, FakeStep } from '../../testkit/fakes/fake-ollama.js';
import { type FakeSlack, waitFor } from '../../testkit/fakes/fake-slack.js';
import { personMessage, type SlackSender, slashCommand } from '../../testkit/fakes/fake-slack-events.js';
import { REDIS_URL } from '../../testkit/redis.js';
import { type SlackStack, startSlackStack } from '../helpers/slack-stack.js';

/**
 * Sub-agents end to end on real parts (Slack through Bolt and the fake Slack, Redis, the worker, real
 * sandboxes, the fake Ollama): the model's `delegate` calls become sub-agents in sandboxes of their own,
 * running in parallel, seeing only the files handed over, never wider on the network than their parent,
 * within the depth and fan-out limits; their results and files come back to the parent, their progress
 * shows in its thread, and the audit log ties each to its parent and to the person who asked.
 */

const CHANNEL = 'C0DELEG';
const NET_CHANNEL = 'C0NET';

type Message = FakeChatRequest['messages'][number];
const toolCall = (name: string, args: Record<string, unknown>) => ({ name, arguments: args });
const bash = (command: string): FakeStep => ({ toolCalls: [toolCall('bash', { command })] });
/** The model's view of results of the calls it made last, in order. */
const lastResults = (messages: Message[]) => {
  const from = messages.map((m) => m.role).lastIndexOf('assistant');
  return messages.slice(from + 1).map((m) => `${m.tool_name}: ${m.content}`);
};
/** Every tool result of the turn, in order. */
const allResults = (messages: Message[]) =>
  messages.filter((m) => m.role === 'tool').map((m) => `${m.tool_name}: ${m.content}`);

const CHILD_WORK =
  'cat /workspace/inbox/brief.txt; cat /workspace/secret.txt 2>&1; cat /workspace/outbox/A.txt /workspace/outbox/B.txt 2>&1; env | grep -ci proxy';

/** Parents and sub-agents, told apart by their first message; each plays its part of the story. */
function script(request: FakeChatRequest): FakeStep {
  const messages = request.messages.filter((m) => m.role !== 'system');
  const first = messages[0]?.content ?? '';
  const last = messages.at(-1);
  const calls = messages.filter((m) => m.role === 'assistant').length;
  const sub = /You are sub-agent (sub-[\d.]+)/.exec(first)?.[1];
  if (sub) {
    const task = first.split('\n').at(-1) ?? '';
    if (last?.role === 'tool') return { reply: `${sub} (${task}) saw:\n${lastResults(messages).join('\n')}` };
    if (task.startsWith('CHILD-')) {
      const name = task.slice('CHILD-'.length);
      const work = `${CHILD_WORK}; mkdir -p /workspace/outbox; echo from-${name} > /workspace/outbox/${name}.txt`;
      return { hold: `child-${name}`, ...bash(work) };
    }
    // A sub-agent that tries to delegate further (it is not offered the tool; it calls it anyway).
    if (task === 'NESTED') return { toolCalls: [toolCall('delegate', { task: 'deeper' })] };
    return bash('echo quick');
  }
  if (first.includes('DELEGATE-TWO')) {
    if (calls === 0)
      return bash(
        'echo secret-of-parent > /workspace/secret.txt; echo brief-for-children > /workspace/brief.txt',
      );
    if (calls === 1) {
      return {
        toolCalls: [
          toolCall('delegate', { task: 'CHILD-A', files: ['brief.txt'] }),
          toolCall('delegate', { task: 'CHILD-B', files: ['/workspace/brief.txt'] }),
        ],
      };
    }
    if (calls === 2) return bash('cat /workspace/subagents/*/A.txt /workspace/subagents/*/B.txt');
    return { reply: `parent got: ${last?.content.trim().split('\n').slice(1).join(' ')}` };
  }
  if (first.includes('DELEGATE-THREE')) {
    if (calls === 0) {
      return {
        toolCalls: [toolCall('delegate', { task: 'NESTED' }), toolCall('delegate', { task: 'plain' })],
      };
    }
    if (calls === 1) return { toolCalls: [toolCall('delegate', { task: 'one too many' })] };
    return { reply: allResults(messages).join('\n---\n') };
  }
  if (first.includes('CANARY-TEST')) {
    // Copied without naming the file (which would trip the canary at once), then handed over.
    if (calls === 0) return bash('cp /workspace/.aw*/cred* /workspace/notes.txt');
    return { toolCalls: [toolCall('delegate', { task: 'summarize', files: ['notes.txt'] })] };
  }
  if (first.includes('NET-TEST')) {
    if (calls === 0) {
      return {
        toolCalls: [
          toolCall('delegate', { task: 'wider', network: ['wider.test'] }),
          toolCall('delegate', { task: 'NETCHECK' }),
        ],
      };
    }
    return { reply: lastResults(messages).join('\n---\n') };
  }
  return { reply: 'nothing to do' };
}

let slack: SlackStack;
let fake: FakeSlack;
let ollama: FakeOllama;
let sender: SlackSender;
let config: Config;
const auditDir = mkdtempSync(path.join(tmpdir(), 'sandbot-delegation-audit-'));

beforeAll(async () => {
  slack = await startSlackStack('delegation', script, (f) => ({
    SANDBOT_AUDIT_DIR: auditDir,
    SLACK_ADMIN_USERS: 'U0ALICE',
    SANDBOT_DELEGATE_MAX_DEPTH: '1',
    SANDBOT_DELEGATE_MAX_FANOUT: '2',
    // The channel's threads may reach wider.test, and so would their sub-agents' ids.
    SANDBOT_NETWORK_RULES: `slack:${f.team}:${NET_CHANNEL}=wider.test`,
  }));
  ({ fake, ollama, sender, config } = slack);
});

afterAll(async () => {
  await slack?.stop(['child-A', 'child-B']);
});

const conversation = (channel: string, ts: string) =>
  ConversationId.parse(`slack:${fake.team}:${channel}:${ts}`);
const thread = (channel: string, ts: string) => fake.botMessages(channel, ts);
const replyIn = (channel: string, ts: string, match: (text: string) => boolean, what: string) =>
  waitFor(what, () => thread(channel, ts).find((m) => match(m.text)), 90_000);

describe('sub-agents', () => {
  it('run in parallel in sandboxes of their own, see only what was handed over, and return text and files', async () => {
    const m = personMessage(fake, {
      channel: CHANNEL,
      user: 'U0ALICE',
      text: `<@${fake.botUserId}> DELEGATE-TWO`,
    });
    await sender.event(m.mention);
    // Both sub-agents are at their first model call at the same time: they run in parallel.
    await Promise.all([ollama.waitForHold('child-A'), ollama.waitForHold('child-B')]);
    const parent = conversation(CHANNEL, m.ts);
    const sandboxes = (await sandboxDriverFromConfig(config).list()).map((s) => s.conversation);
    expect(sandboxes).toEqual(expect.arrayContaining([parent, `${parent}:sub-1`, `${parent}:sub-2`]));
    ollama.release('child-A');
    ollama.release('child-B');

    const final = await replyIn(CHANNEL, m.ts, (t) => t.startsWith('parent got:'), 'the parent’s answer');
    // The files the sub-agents left in their outboxes reached the parent's workspace.
    expect(final.text).toBe('parent got: from-A from-B');

    // What each sub-agent's own command printed in its own sandbox.
    const childSaw = (name: string) =>
      ollama
        .chatRequests()
        .find(
          (r) => r.messages[1]?.content.endsWith(`\n\nCHILD-${name}`) && r.messages.at(-1)?.role === 'tool',
        )
        ?.messages.at(-1)?.content;
    for (const name of ['A', 'B']) {
      const saw = childSaw(name) ?? '';
      expect(saw).toContain('brief-for-children'); // handed over
      expect(saw).toContain('/workspace/secret.txt: No such file or directory'); // the parent's, not handed over
      const sibling = name === 'A' ? 'B' : 'A';
      expect(saw).toContain(`/workspace/outbox/${sibling}.txt: No such file or directory`); // the sibling's
      expect(saw).toMatch(/\n0\n$/); // no proxy settings: the parent has no network, nor do they
    }
    // The model was handed the sub-agents' answers as the delegate tool's results.
    const parentView = ollama
      .chatRequests()
      .find(
        (r) =>
          r.messages.some((x) => x.content.includes('DELEGATE-TWO')) &&
          r.messages.at(-1)?.tool_name === 'delegate',
      );
    expect(parentView?.messages.at(-2)?.content).toMatch(
      /^Sub-agent (sub-\d) answered:\n\1 \(CHILD-A\) saw:[\s\S]*Files it returned, now in your workspace: subagents\/\1\/A\.txt$/,
    );
    // Only the parent was offered delegate; a sub-agent at the depth limit was not.
    const offered = (match: string) =>
      ollama
        .chatRequests()
        .find((r) => r.messages.some((x) => x.content.includes(match)))
        ?.tools?.map((t) => (t as { function: { name: string } }).function.name);
    expect(offered('DELEGATE-TWO')).toContain('delegate');
    expect(offered('CHILD-A')).not.toContain('delegate');

    // The thread shows the sub-agents' progress and ends.
    const texts = thread(CHANNEL, m.ts).map((x) => x.text);
    expect(texts).toEqual(
      expect.arrayContaining(['🤖 sub-agent sub-1 finished.', '🤖 sub-agent sub-2 finished.']),
    );
    expect(texts.some((t) => /sub-\d › bash: cat \/workspace\/inbox\/brief\.txt/.test(t))).toBe(true);
    expect(texts.some((t) => t.includes('delegate: CHILD-A'))).toBe(true);

    // The audit log ties each sub-agent to its parent and to the person who asked.
    const journal = new AuditJournal(auditDir, config.SANDBOT_INSTANCE);
    const child = ConversationId.parse(`${parent}:sub-1`);
    const started = await waitFor('the sub-agent’s audit trail', async () => {
      const events = parseEvents((await journal.read(child)) ?? '');
      return events.find((e) => e.kind === 'delegation.started');
    });
    expect(started.data).toMatchObject({
      parent,
      child,
      root: parent,
      requestedBy: 'slack:U0ALICE',
      files: ['brief.txt'],
    });
    // Its brief is recorded as the message it received, from the person who asked, after the start.
    const childEvents = parseEvents((await journal.read(child)) ?? '');
    const received = childEvents.find((e) => e.kind === 'message.received');
    expect(received).toMatchObject({ actor: 'user:slack:U0ALICE', data: { platform: 'slack' } });
    const startedAt = childEvents.findIndex((e) => e.kind === 'delegation.started');
    expect(startedAt).toBeGreaterThanOrEqual(0);
    expect(childEvents.indexOf(received!)).toBeGreaterThan(startedAt);
    const parentEvents = await waitFor('the parent’s delegation records', async () => {
      const events = parseEvents((await journal.read(parent)) ?? '');
      const finished = events.filter((e) => e.kind === 'delegation.finished');
      return finished.length === 2 && events;
    });
    expect(parentEvents.filter((e) => e.kind === 'delegation.started').map((e) => e.data.child)).toEqual(
      expect.arrayContaining([`${parent}:sub-1`, `${parent}:sub-2`]),
    );
    expect(parentEvents.find((e) => e.kind === 'task.created')?.data).toMatchObject({
      owner: 'slack:U0ALICE',
    });
  });

  it('holds to the depth and fan-out limits, with clear refusals to the model', async () => {
    const m = personMessage(fake, {
      channel: CHANNEL,
      user: 'U0BOB',
      text: `<@${fake.botUserId}> DELEGATE-THREE`,
    });
    await sender.event(m.mention);
    const final = await replyIn(CHANNEL, m.ts, (t) => t.includes('---'), 'the parent’s summary');
    const [nested, plain, third] = final.text.split('\n---\n');
    expect(nested).toMatch(
      /^delegate: Sub-agent (sub-\d) answered:\n\1 \(NESTED\) saw:\ndelegate: delegate refused: sub-agents may nest 1 deep at most \(SANDBOT_DELEGATE_MAX_DEPTH\)/,
    );
    expect(plain).toMatch(
      /^delegate: Sub-agent (sub-\d) answered:\n\1 \(plain\) saw:\nbash: exit code 0\nquick/,
    );
    expect(third).toBe(
      'delegate: delegate refused: you have started 2 sub-agents, the most one agent may (SANDBOT_DELEGATE_MAX_FANOUT); do the rest yourself',
    );
    const parent = conversation(CHANNEL, m.ts);
    const sandboxes = (await sandboxDriverFromConfig(config).list()).map((s) => s.conversation);
    expect(sandboxes.filter((s) => s.startsWith(`${parent}:`))).toHaveLength(2);
  });

  it('will not hand the canary credentials to a sub-agent: the tripwire kills the parent', async () => {
    const m = personMessage(fake, {
      channel: CHANNEL,
      user: 'U0CAROL',
      text: `<@${fake.botUserId}> CANARY-TEST`,
    });
    await sender.event(m.mention);
    const killed = await replyIn(CHANNEL, m.ts, (t) => t.includes('Killed'), 'the kill notice');
    expect(killed.text).toContain('the agent tried to hand the canary credentials to a sub-agent');
    const parent = conversation(CHANNEL, m.ts);
    const sandboxes = (await sandboxDriverFromConfig(config).list()).map((s) => s.conversation);
    expect(sandboxes.some((s) => s.startsWith(`${parent}:`))).toBe(false);
  });

  it('never gives a sub-agent a wider network than its parent, whatever the config rules say', async () => {
    const ts = fake.nextTs();
    const link = `<https://slack.com/archives/${NET_CHANNEL}/p${ts.replace('.', '')}>`;
    // An admin takes the network away from this thread before it starts; the channel's rule still grants it.
    const off = slashCommand(fake, { channel: NET_CHANNEL, user: 'U0ALICE', text: `network off ${link}` });
    await sender.command(off);
    await waitFor('network off', () => fake.responses.find((r) => r.url === off.response_url));
    const m = personMessage(fake, {
      ts,
      channel: NET_CHANNEL,
      user: 'U0ALICE',
      text: `<@${fake.botUserId}> NET-TEST`,
    });
    await sender.event(m.mention);
    const final = await replyIn(NET_CHANNEL, ts, (t) => t.includes('---'), 'the parent’s summary');
    const [wider, checked] = final.text.split('\n---\n');
    expect(wider).toBe(
      'delegate: delegate refused: a sub-agent cannot reach more than you: you have no network, not wider.test',
    );
    expect(checked).toMatch(/^delegate: Sub-agent sub-1 answered:/);
    const child = ConversationId.parse(`${conversation(NET_CHANNEL, ts)}:sub-1`);
    const redis = new Redis(REDIS_URL);
    try {
      const policy = new NetworkPolicyStore(redis, config.SANDBOT_INSTANCE, config.SANDBOT_NETWORK_RULES);
      expect(grantsFromRules(config.SANDBOT_NETWORK_RULES, child)).toEqual(['wider.test']);
      expect(await policy.grantsFor(child)).toEqual([]);
    } finally {
      redis.disconnect();
    }
  });
});
