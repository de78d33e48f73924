import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type FakeChatRequest,
  type FakeOllama,
  type FakeStep,
  startFakeOllama,
} from '../../testkit/fakes/fake-ollama.js';
import { type FakeSlack, startFakeSlack, waitFor } from '../../testkit/fakes/fake-slack.js';
import { personMessage, SlackSender, slashCommand } from '../../testkit/fakes/fake-slack-events.js';
import { cleanInstance } from '../../testkit/instance.js';
import { testInstance } from '../../testkit/redis.js';
import { slackSettings } from '../helpers/slack-harness.js';
import { startStack, testConfig } from '../helpers/stack.js';

/**
 * Slack end to end on real parts: the real gateway with the real Bolt app in Socket Mode against the
 * fake Slack, the Redis queue, the worker, a real sandbox container, and the fake Ollama. The model
 * runs the user's message as a bash command and answers with what it printed.
 */

const MODEL = 'qwen2.5:7b';
const CHANNEL = 'C0E2E';
const lastOf = (request: FakeChatRequest) => request.messages[request.messages.length - 1];

function script(request: FakeChatRequest): FakeStep {
  const last = lastOf(request);
  // The tool's output ends with what the command printed (after the runtime's own header).
  if (last?.role === 'tool') return { reply: `tool said: ${last.content.trim().split('\n').at(-1)}` };
  const command = last?.content.replace(/^[^:]*: /, '') ?? 'true';
  if (command.includes('wait-for-stop')) return { hold: 'stop-me' };
  return { toolCalls: [{ name: 'bash', arguments: { command } }] };
}

let fake: FakeSlack;
let ollama: FakeOllama;
let stack: Awaited<ReturnType<typeof startStack>>;
let sender: SlackSender;
const config = testConfig(testInstance('slack-e2e'));

beforeAll(async () => {
  fake = await startFakeSlack();
  ollama = await startFakeOllama({ models: [MODEL], script });
  Object.assign(
    config,
    testConfig(config.SANDBOT_INSTANCE, {
      ...slackSettings(fake, 'socket'),
      OLLAMA_HOST: ollama.url,
      SANDBOT_MODEL: MODEL,
    }),
  );
  stack = await startStack(config);
  sender = new SlackSender(fake, 'socket');
});

afterAll(async () => {
  await stack?.stop();
  ollama?.release('stop-me');
  await ollama?.close();
  await fake?.close();
  await cleanInstance(config);
});

const mention = (text: string, thread_ts?: string) =>
  personMessage(fake, {
    channel: CHANNEL,
    user: 'U0ALICE',
    text: `<@${fake.botUserId}> ${text}`,
    ...(thread_ts ? { thread_ts } : {}),
  });

async function command(text: string): Promise<string> {
  const fields = slashCommand(fake, { channel: CHANNEL, user: 'U0ALICE', text });
  await sender.command(fields);
  const answer = await waitFor(`the answer to /sandbot ${text}`, () =>
    fake.responses.find((r) => r.url === fields.response_url),
  );
  return String(answer.text);
}

describe('Slack end to end', () => {
  it('answers a mention in a thread: 👀, an edited progress message, the reply, ✅ — once', async () => {
    const m = mention('echo hello-from-slack');
    // Both events of the mention, and a retry: one turn.
    await sender.event(m.message);
    await sender.event(m.mention);
    await sender.event(m.mention, { retryNum: 1 });
    await waitFor('👀', () => fake.reactionsOn(CHANNEL, m.ts).includes('eyes'));
    const reply = await waitFor(
      'the reply',
      () => fake.botMessages(CHANNEL, m.ts).find((p) => p.text.startsWith('tool said')),
      60_000,
    );
    expect(reply.text).toBe('tool said: hello-from-slack');
    await waitFor('✅', () => fake.reactionsOn(CHANNEL, m.ts).join() === 'white_check_mark');
    const [progress, ...rest] = fake.botMessages(CHANNEL, m.ts);
    expect(rest).toEqual([reply]);
    expect(progress?.edits.length).toBeGreaterThan(0);
    expect(progress?.text).toMatch(/Done – 1 step/);
    expect(progress?.text).toContain('bash: echo hello-from-slack');
    const turns = ollama
      .chatRequests()
      .filter((r) => lastOf(r)?.role === 'user' && lastOf(r)?.content.includes('hello-from-slack'));
    expect(turns).toHaveLength(1);
  });

  it('takes a follow-up in the thread without a mention, in the same conversation', async () => {
    const root = mention('echo first-in-thread');
    await sender.event(root.mention);
    await waitFor(
      'the first reply',
      () => fake.botMessages(CHANNEL, root.ts).some((p) => p.text.includes('first-in-thread')),
      60_000,
    );
    const follow = personMessage(fake, {
      channel: CHANNEL,
      user: 'U0BOB',
      text: 'echo second-in-thread',
      thread_ts: root.ts,
    });
    await sender.event(follow.message);
    await waitFor(
      'the second reply',
      () => fake.botMessages(CHANNEL, root.ts).some((p) => p.text === 'tool said: second-in-thread'),
      60_000,
    );
    // The model saw the first exchange: one conversation, one history.
    const second = ollama.chatRequests().find((r) => lastOf(r)?.content.includes('second-in-thread'));
    expect(JSON.stringify(second?.messages)).toContain('first-in-thread');
    await waitFor(
      '✅ on the follow-up',
      () => fake.reactionsOn(CHANNEL, follow.ts).join() === 'white_check_mark',
    );
  });

  it('puts attachments in /workspace/inbox and uploads what the agent leaves in /workspace/outbox', async () => {
    const file = fake.hostFile('data.txt', Buffer.from('42 apples\n'));
    const command =
      'wc -w < /workspace/inbox/data.txt; mkdir -p /workspace/outbox; tr a-z A-Z < /workspace/inbox/data.txt > /workspace/outbox/shout.txt';
    const m = personMessage(fake, { channel: 'D0FILES', user: 'U0ALICE', text: command, files: [file] });
    await sender.event(m.message);
    const reply = await waitFor(
      'the reply',
      () => fake.botMessages('D0FILES').find((p) => p.text.startsWith('tool said')),
      60_000,
    );
    expect(reply.text).toBe('tool said: 2');
    const upload = await waitFor('the outbox file', () =>
      fake.botMessages('D0FILES').find((p) => p.files.length > 0),
    );
    expect(upload.files.map((f) => [f.filename, f.bytes.toString()])).toEqual([['shout.txt', '42 APPLES\n']]);
  });

  it('answers a DM at its top level', async () => {
    const dm = personMessage(fake, { channel: 'D0E2E', user: 'U0ALICE', text: 'echo in-a-dm' });
    await sender.event(dm.message);
    await waitFor(
      'the DM reply',
      () => fake.botMessages('D0E2E').some((p) => p.text === 'tool said: in-a-dm'),
      60_000,
    );
  });

  it('reports and stops a running turn with /sandbot, and resets the conversation', async () => {
    const m = mention('wait-for-stop');
    await sender.event(m.mention);
    await ollama.waitForHold('stop-me');
    expect(await command('status')).toMatch(/^The agent is working on this conversation/);
    expect(await command('stop')).toBe('Stopping the running turn.');
    const stopped = await waitFor(
      'the stopped reply',
      () => fake.botMessages(CHANNEL, m.ts).find((p) => p.text.startsWith('Stopped')),
      30_000,
    );
    expect(stopped.text).toContain('slack:U0ALICE');
    await waitFor('🛑', () => fake.reactionsOn(CHANNEL, m.ts).join() === 'octagonal_sign');
    // The status now carries the conversation's recent activity from the audit log.
    await waitFor(
      'an activity summary',
      async () => /Recent activity since .*; tools: /.test(await command('status')),
      30_000,
    );

    expect(await command('reset')).toMatch(/^Reset queued/);
    await waitFor(
      'the reset notice in the thread',
      () => fake.botMessages(CHANNEL, m.ts).some((p) => p.text.startsWith('Conversation reset')),
      30_000,
    );
  });
});
