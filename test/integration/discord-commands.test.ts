import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DiscordHarness, startDiscordHarness } from '../helpers/discord-harness.js';

/**
 * Slash commands through the real discord.js client and a fake Discord: acknowledged at once (deferred
 * or an ephemeral answer), then edited; what they queue lands on the real Redis queue (no worker here).
 */

let h: DiscordHarness;

beforeAll(async () => {
  h = await startDiscordHarness((fake) => ({
    DISCORD_ADMIN_ROLE: fake.roles.admin,
    // A rule for one channel: it must reach that channel's threads, and no other channel's.
    SANDBOT_NETWORK_RULES: `discord:${fake.guild.id}:${fake.channels.general.id}=api.example.test`,
  }));
});

afterAll(async () => {
  await h?.stop();
});

describe('discord adapter: slash commands', () => {
  it('/ask in a channel defers, shows the task, opens a thread from it and starts a conversation there', async () => {
    const { fake } = h;
    const ask = fake.command({
      name: 'ask',
      channelId: fake.channels.general.id,
      options: { task: 'list the files\nthen count them' },
    });
    const original = await fake.waitFor(
      () => ask.original?.content.includes('list the files') && ask.original,
      'the edited response',
    );
    expect(ask.callback).toEqual({ type: 5, data: {} });
    expect(original.content).toBe(`<@${fake.users.alice.id}> asked:\n>>> list the files\nthen count them`);
    const thread = await fake.waitFor(() => fake.channel(original.id), 'the thread from the response');
    expect(thread).toMatchObject({ parent_id: fake.channels.general.id, name: 'list the files' });
    const queued = await h.waitForQueued((m) => m.id === ask.id, 'the task');
    expect(queued).toMatchObject({
      conversation: `discord:${fake.guild.id}:${fake.channels.general.id}:${thread.id}`,
      text: 'list the files\nthen count them',
      route: { channelId: thread.id, guildId: fake.guild.id },
    });
    // Callbacks and webhook edits authenticate with the interaction token, never the bot token.
    const tokenCalls = fake.requests.filter((r) => r.path.includes(ask.token));
    expect(tokenCalls.length).toBeGreaterThanOrEqual(2);
    expect(tokenCalls.every((r) => r.authorization === undefined)).toBe(true);
  });

  it('/ask inside a thread or a DM adds to that conversation', async () => {
    const { fake } = h;
    const thread = fake.userThread(fake.channels.general.id, 'ongoing');
    const inThread = fake.command({ name: 'ask', channelId: thread.id, options: { task: 'and now this' } });
    const dm = fake.dmChannel(fake.users.bob);
    const inDm = fake.command({
      name: 'ask',
      channelId: dm.id,
      user: fake.users.bob,
      options: { task: 'privately' },
    });
    expect((await h.waitForQueued((m) => m.id === inThread.id, 'thread ask')).conversation).toBe(
      `discord:${fake.guild.id}:${fake.channels.general.id}:${thread.id}`,
    );
    expect((await h.waitForQueued((m) => m.id === inDm.id, 'dm ask')).conversation).toBe(
      `discord:dm:${dm.id}`,
    );
    // The thread is now sandbot's: a plain follow-up is heard.
    const followUp = fake.userMessage({ channelId: thread.id, content: 'one more thing' });
    await h.waitForQueued((m) => m.id === followUp.id, 'the follow-up');
  });

  it('/reset and /run queue commands whose answer edits the command’s response', async () => {
    const { fake } = h;
    const thread = fake.userThread(fake.channels.general.id, 'ops');
    const before = Date.now();
    const reset = fake.command({ name: 'reset', channelId: thread.id });
    const run = fake.command({
      name: 'run',
      channelId: thread.id,
      options: { command: 'ls -la /workspace' },
    });
    const queuedReset = await h.waitForQueued((m) => m.id === reset.id, 'reset');
    const queuedRun = await h.waitForQueued((m) => m.id === run.id, 'run');
    expect(queuedReset).toMatchObject({
      command: 'reset',
      conversation: `discord:${fake.guild.id}:${fake.channels.general.id}:${thread.id}`,
    });
    expect(queuedRun).toMatchObject({ command: 'run', text: 'ls -la /workspace' });
    expect(queuedRun.route).toMatchObject({
      channelId: thread.id,
      applicationId: fake.applicationId,
      interactionToken: run.token,
    });
    const expires = Number(queuedRun.route.interactionExpiresAt);
    expect(expires).toBeGreaterThanOrEqual(before + 15 * 60_000 - 5_000);
    expect(run.callback?.type).toBe(5);
  });

  it('/status and /stop answer from the queue', async () => {
    const { fake } = h;
    const thread = fake.userThread(fake.channels.general.id, 'status check');
    const status0 = fake.command({ name: 'status', channelId: thread.id });
    await fake.waitFor(() => status0.original?.content.includes('Idle'), 'the first status');
    expect(status0.original?.content).toBe('💤 Idle. No turn yet.');
    fake.userMessage({ channelId: thread.id, content: 'do something', mention: true });
    await h.waitForQueued((m) => m.text === 'do something', 'the message');
    const status1 = fake.command({ name: 'status', channelId: thread.id });
    await fake.waitFor(() => status1.original?.content.includes('waiting'), 'the second status');
    expect(status1.original?.content).toBe('💤 Idle. 1 message waiting. No turn yet.');
    const stop = fake.command({ name: 'stop', channelId: thread.id });
    await fake.waitFor(() => stop.original?.content || undefined, 'the stop answer');
    expect(stop.original?.content).toBe('Nothing is running in this conversation.');
  });

  it('applies a network rule for a channel to the threads under it, and only to them', async () => {
    const { fake } = h;
    const inGeneral = fake.userThread(fake.channels.general.id, 'needs pypi');
    const inClosed = fake.userThread(fake.channels.closed.id, 'elsewhere');
    const here = fake.command({ name: 'network', channelId: inGeneral.id });
    const there = fake.command({ name: 'network', channelId: inClosed.id });
    // A deferred response reads '' until it is edited: wait for both edits.
    await fake.waitFor(
      () => (here.original?.content && there.original?.content) || undefined,
      'both network answers',
    );
    expect(here.original?.content).toBe(
      'This conversation now has network to api.example.test (through the egress proxy); it applies from its next turn.',
    );
    expect(there.original?.content).toBe(
      'This conversation now has no network; it applies from its next turn.',
    );
  });

  it('answers at once and only to the user when refusing or when a command does not apply', async () => {
    const { fake } = h;
    const thread = fake.userThread(fake.channels.general.id, 'admin things');
    const run = fake.command({
      name: 'run',
      channelId: thread.id,
      user: fake.users.bob,
      options: { command: 'id' },
    });
    const kill = fake.command({ name: 'kill', channelId: thread.id });
    const network = fake.command({ name: 'network', channelId: thread.id, user: fake.users.bob });
    const status = fake.command({ name: 'status', channelId: fake.channels.general.id });
    await fake.waitFor(() => [run, kill, network, status].every((i) => i.callback), 'four answers');
    expect(run.callback).toEqual({
      type: 4,
      data: expect.objectContaining({ flags: 64, content: 'This command needs the sandbot admin role.' }),
    });
    await fake.waitFor(() => kill.original?.content.includes('Killed'), 'the kill answer');
    expect(kill.original?.content).toMatch(/^☠️ Killed\. This conversation is quarantined/);
    expect(network.callback?.data?.content).toBe('This command needs the sandbot admin role.');
    expect(status.callback?.data).toMatchObject({
      flags: 64,
      content: expect.stringContaining('inside a sandbot thread'),
    });
    expect(h.logs.filter((l) => l.audit === 'access_refused' && l.user === fake.users.bob.id)).toEqual([
      expect.objectContaining({ reason: 'admin', via: '/run', channel: thread.id, guild: fake.guild.id }),
      expect.objectContaining({ reason: 'admin', via: '/network' }),
    ]);
    expect((await h.queued()).some((m) => m.id === run.id)).toBe(false);
  });

  it('acts on a conversation only for the person who started it, or an admin', async () => {
    const { fake } = h;
    const { bob, mallory } = fake.users;
    const thread = fake.userThread(fake.channels.general.id, 'bob’s work', bob);
    const conversation = `discord:${fake.guild.id}:${fake.channels.general.id}:${thread.id}`;
    fake.userMessage({ channelId: thread.id, author: bob, content: 'build it', mention: true });
    await h.waitForQueued((m) => m.text === 'build it', 'bob’s message');

    // Mallory may not reset, stop or look at bob's conversation: refused at once, only to her.
    const reset = fake.command({ name: 'reset', channelId: thread.id, user: mallory });
    const stop = fake.command({ name: 'stop', channelId: thread.id, user: mallory });
    const status = fake.command({ name: 'status', channelId: thread.id, user: mallory });
    await fake.waitFor(() => [reset, stop, status].every((i) => i.callback), 'three refusals');
    expect(reset.callback).toEqual({
      type: 4,
      data: expect.objectContaining({
        flags: 64,
        content: `Only <@${bob.id}> (who started it) or an admin can use /reset on it.`,
      }),
    });
    expect(stop.callback?.data).toMatchObject({ flags: 64, content: expect.stringMatching(/^Only <@/) });
    expect(status.callback?.data).toMatchObject({ flags: 64, content: expect.stringMatching(/^Only <@/) });

    // Bob may; so may an admin (alice); and in his DM, bob is its owner.
    const own = fake.command({ name: 'status', channelId: thread.id, user: bob });
    await fake.waitFor(() => own.original?.content.includes('waiting'), 'bob’s status');
    expect(own.original?.content).toBe('💤 Idle. 1 message waiting. No turn yet.');
    const admin = fake.command({ name: 'reset', channelId: thread.id });
    await h.waitForQueued((m) => m.id === admin.id, 'the admin’s reset');
    const dm = fake.dmChannel(bob);
    const inDm = fake.command({ name: 'reset', channelId: dm.id, user: bob });
    await h.waitForQueued((m) => m.id === inDm.id, 'bob’s reset of his DM');

    const resets = (await h.queued()).filter((m) => m.command === 'reset' && m.conversation === conversation);
    expect(resets.map((m) => m.user.id)).toEqual([fake.users.alice.id]);
    const refused = h.logs.filter((l) => l.audit === 'access_refused' && l.reason === 'owner');
    // The three were handled side by side: their order is not the point.
    expect(refused.map((l) => [l.user, l.via, l.channel]).sort()).toEqual([
      [mallory.id, '/reset', thread.id],
      [mallory.id, '/status', thread.id],
      [mallory.id, '/stop', thread.id],
    ]);
  });
});
