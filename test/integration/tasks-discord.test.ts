import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sandboxDriverFromConfig } from '../../sandbox/host/driver/from-config.js';
import type { Config } from '../../src/contracts/config/schema.js';
import type { ConversationId } from '../../src/contracts/conversation/id.js';
import type { FakeDiscord } from '../../testkit/fakes/fake-discord.js';
import type { FakeChatRequest, FakeStep } from '../../testkit/fakes/fake-ollama.js';
import { REDIS_URL } from '../../testkit/redis.js';
import { type DiscordStack, startDiscordStack } from '../helpers/discord-stack.js';
import { turnsSettled } from '../helpers/turns.js';

/**
 * Tasks in a Discord channel, end to end on real parts (discord.js against the fake Discord, Redis, the
 * worker, real sandboxes, the fake Ollama): /ask makes a task in a thread of its own; /tasks lists the
 * channel's tasks (in the channel or in any of its threads); /done closes a task for its owner or an
 * admin, and the thread says so (here the channel is not ephemeral: the files stay).
 */

function script(request: FakeChatRequest): FakeStep {
  const last = request.messages.at(-1);
  const first = request.messages[1]?.content ?? '';
  if (first === 'DELEGATE-ONE' && last?.role !== 'tool') {
    return { toolCalls: [{ name: 'delegate', arguments: { task: 'echo from-the-sub-agent' } }] };
  }
  if (last?.role === 'tool') return { reply: `tool said: ${last.content.trim().split('\n').at(-1)}` };
  const command = first.startsWith('You are sub-agent')
    ? (first.split('\n').at(-1) ?? '')
    : (last?.content ?? '');
  return { toolCalls: [{ name: 'bash', arguments: { command } }] };
}

let h: DiscordStack;
let fake: FakeDiscord;
let config: Config;
let redis: Redis;

beforeAll(async () => {
  h = await startDiscordStack('tasks-discord', script);
  ({ fake, config } = h);
  redis = new Redis(REDIS_URL);
});

afterAll(async () => {
  redis?.disconnect();
  await h?.stop();
});

const conversationOf = (thread: string) =>
  `discord:${fake.guild.id}:${fake.channels.general.id}:${thread}` as ConversationId;

/** /ask in #general; resolves with the task's thread once the agent answered there. */
async function ask(user: 'alice' | 'bob', task: string) {
  const interaction = fake.command({
    name: 'ask',
    channelId: fake.channels.general.id,
    user: fake.users[user],
    options: { task },
  });
  const original = await fake.waitFor(
    () => interaction.original?.content.includes('asked') && interaction.original,
    'the task shown',
  );
  const thread = await fake.waitFor(() => fake.channel(original.id), 'the thread');
  await fake.waitFor(
    () => fake.botMessages(thread.id).find((m) => m.content.includes('tool said:')),
    'the answer in the thread',
    60_000,
  );
  // The answer comes before its turn's bookkeeping ends (and the task leaves "running").
  await turnsSettled(redis, config.SANDBOT_INSTANCE, conversationOf(thread.id));
  return thread;
}

async function answerTo(name: string, channelId: string, user: 'alice' | 'bob' = 'alice'): Promise<string> {
  const interaction = fake.command({ name, channelId, user: fake.users[user] });
  return fake.waitFor(() => interaction.original?.content || undefined, `the answer to /${name}`, 30_000);
}

describe('tasks in a Discord channel', () => {
  it('lists the tasks of the channel and closes them for their owner or an admin', async () => {
    const [aliceThread, bobThread] = await Promise.all([
      ask('alice', 'echo alice-task > /workspace/a.txt; cat /workspace/a.txt'),
      ask('bob', 'echo bob-task'),
    ]);
    const sandboxes = (await sandboxDriverFromConfig(config).list()).map((s) => s.conversation);
    const general = fake.channels.general.id;
    expect(sandboxes).toEqual(
      expect.arrayContaining([
        `discord:${fake.guild.id}:${general}:${aliceThread.id}`,
        `discord:${fake.guild.id}:${general}:${bobThread.id}`,
      ]),
    );

    const board = await answerTo('tasks', general);
    expect(board).toMatch(new RegExp(`^\\*\\*Tasks in <#${general}>\\*\\*\\n`));
    expect(board).toContain(`💬 **waiting for input** · <#${aliceThread.id}> echo alice-task`);
    expect(board).toContain(`<#${bobThread.id}> echo bob-task · <@${fake.users.bob.id}> · <t:`);
    // From inside a thread, /tasks lists its channel's tasks too.
    expect(await answerTo('tasks', bobThread.id, 'bob')).toBe(board);

    // bob may not close alice's task; alice (owner, and admin) may close bob's.
    expect(await answerTo('done', aliceThread.id, 'bob')).toBe(
      `Only <@${fake.users.alice.id}> (who started it) or an admin can close this task.`,
    );
    expect(await answerTo('done', bobThread.id, 'alice')).toBe(
      '✅ Task closed by alice. Its files are kept; write here again to reopen it.',
    );
    expect(await answerTo('done', aliceThread.id, 'alice')).toMatch(/^✅ Task closed by alice/);
    const after = await answerTo('tasks', general);
    expect(after).toContain(`✅ **done** · <#${aliceThread.id}>`);
    expect(after).toContain(`✅ **done** · <#${bobThread.id}>`);
    expect(await answerTo('done', aliceThread.id, 'alice')).toBe('This task is already done.');

    // Not ephemeral: the files stay, and a new message reopens the task.
    fake.userMessage({ channelId: aliceThread.id, content: 'cat /workspace/a.txt' });
    await fake.waitFor(
      () =>
        fake.botMessages(aliceThread.id).filter((m) => m.content === 'tool said: alice-task').length === 2,
      'the reopened task answering from its kept files',
      60_000,
    );
    await turnsSettled(redis, config.SANDBOT_INSTANCE, conversationOf(aliceThread.id));
    expect(await answerTo('tasks', general)).toContain(`💬 **waiting for input** · <#${aliceThread.id}>`);
  });

  it('shows a sub-agent’s progress in the task’s thread', async () => {
    const thread = await ask('bob', 'DELEGATE-ONE');
    const final = fake.botMessages(thread.id).find((m) => m.content.startsWith('tool said:'));
    // The parent's model got the sub-agent's answer as the delegate tool's result.
    expect(final?.content).toBe('tool said: tool said: from-the-sub-agent');
    const messages = fake.botMessages(thread.id);
    expect(messages.map((m) => m.content)).toContain('🤖 sub-agent sub-1 finished.');
    const progress = messages.find((m) => m.history.some((h) => h.includes('sub-agent sub-1 is working')));
    expect(progress?.history.join('\n')).toContain('sub-1 › bash: echo from-the-sub-agent');
  });

  it('keeps /tasks to server channels and /done to task threads', async () => {
    const dm = fake.dmChannel(fake.users.bob);
    const inDm = fake.command({ name: 'tasks', channelId: dm.id, user: fake.users.bob });
    await fake.waitFor(() => inDm.callback, 'the answer in a DM');
    expect(inDm.callback?.data?.content).toBe('Tasks live in server channels: use /tasks there.');
    const inChannel = fake.command({ name: 'done', channelId: fake.channels.general.id });
    await fake.waitFor(() => inChannel.callback, 'the answer in a channel');
    expect(inChannel.callback?.data?.content).toContain('inside a sandbot thread');
    const plain = fake.userThread(fake.channels.general.id, 'not a task');
    expect(await answerTo('done', plain.id)).toMatch(/^This thread is not a task/);
  });
});
