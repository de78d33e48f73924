import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DISCORD_INTENTS } from '../../adapters/discord/connection.js';
import { type DiscordHarness, startDiscordHarness } from '../helpers/discord-harness.js';

/**
 * Events in: the real discord.js client on a fake Discord, the adapter turning messages and slash
 * commands into queued InboundMessages (real Redis queue; no worker runs here).
 */

let h: DiscordHarness;
let restricted: DiscordHarness;

beforeAll(async () => {
  [h, restricted] = await Promise.all([
    startDiscordHarness(() => ({ SANDBOT_FILE_MAX_BYTES: '2048' })),
    startDiscordHarness((fake) => ({
      DISCORD_ALLOWED_ROLES: fake.roles.crew,
      DISCORD_ADMIN_ROLE: fake.roles.admin,
      DISCORD_ALLOWED_CHANNELS: fake.channels.general.id,
    })),
  ]);
});

afterAll(async () => {
  await Promise.all([h?.stop(), restricted?.stop()]);
});

const newest = <T>(list: T[]) => list.at(-1);

describe('discord adapter: events in', () => {
  it('connects with only the intents it uses and registers its commands in the configured guild', async () => {
    const { fake } = h;
    expect(h.adapter.health()).toEqual({ ok: true, detail: 'connected' });
    expect(fake.gateway.identifies).toEqual([{ intents: DISCORD_INTENTS }]);
    // Guilds, GuildMessages, DirectMessages, MessageContent.
    expect(DISCORD_INTENTS).toBe(1 | (1 << 9) | (1 << 12) | (1 << 15));
    const registered = await fake.waitFor(
      () => fake.commands.get(fake.guild.id) as { name: string }[],
      'commands',
    );
    expect(registered.map((c) => c.name).sort()).toEqual([
      'ask',
      'done',
      'kill',
      'network',
      'reset',
      'run',
      'schedule',
      'schedules',
      'skill',
      'status',
      'stop',
      'tasks',
    ]);
    expect(fake.commands.has('global')).toBe(false);
  });

  it('turns a mention in a channel into a thread, and follow-ups there reach the same conversation', async () => {
    const { fake } = h;
    const mention = fake.userMessage({
      channelId: fake.channels.general.id,
      content: 'count the lines\nin notes.txt',
      mention: true,
    });
    const thread = await fake.waitFor(() => fake.channel(mention.id), 'the thread');
    expect(thread).toMatchObject({
      parent_id: fake.channels.general.id,
      owner_id: fake.bot.id,
      name: 'count the lines',
    });
    const first = await h.waitForQueued((m) => m.id === mention.id, 'the mention');
    expect(first).toMatchObject({
      conversation: `discord:${fake.guild.id}:${fake.channels.general.id}:${thread.id}`,
      platform: 'discord',
      user: { id: fake.users.alice.id, name: 'alice' },
      text: 'count the lines\nin notes.txt',
      route: { channelId: thread.id, guildId: fake.guild.id },
    });

    const followUp = fake.userMessage({
      channelId: thread.id,
      content: 'and the words too',
      author: fake.users.bob,
    });
    const second = await h.waitForQueued((m) => m.id === followUp.id, 'the follow-up');
    expect(second.conversation).toBe(first.conversation);
    expect(second.text).toBe('and the words too');
  });

  it('ignores chatter without a mention, its own messages and other bots', async () => {
    const { fake } = h;
    const before = (await h.queued()).length;
    fake.userMessage({ channelId: fake.channels.general.id, content: 'just chatting' });
    fake.userMessage({
      channelId: fake.channels.general.id,
      content: 'hello',
      mention: true,
      author: fake.users.otherBot,
    });
    const thread = fake.userThread(fake.channels.general.id, 'people talking');
    fake.userMessage({ channelId: thread.id, content: 'not for the bot' });
    // A marker message that is handled proves the ones before it were seen and passed over.
    const marker = fake.userMessage({
      channelId: fake.dmChannel(fake.users.bob).id,
      content: 'marker',
      author: fake.users.bob,
    });
    await h.waitForQueued((m) => m.id === marker.id, 'the marker');
    expect((await h.queued()).length).toBe(before + 1);
  });

  it('takes a user’s thread on when mentioned there, then hears it without mentions', async () => {
    const { fake } = h;
    const thread = fake.userThread(fake.channels.general.id, 'planning');
    const mention = fake.userMessage({ channelId: thread.id, content: 'help us plan', mention: true });
    await h.waitForQueued((m) => m.id === mention.id, 'the mention in a user thread');
    const later = fake.userMessage({ channelId: thread.id, content: 'and then?' });
    const queued = await h.waitForQueued((m) => m.id === later.id, 'the follow-up');
    expect(queued.conversation).toBe(`discord:${fake.guild.id}:${fake.channels.general.id}:${thread.id}`);
  });

  it('makes each DM one conversation', async () => {
    const { fake } = h;
    const dm = fake.dmChannel(fake.users.alice);
    const first = fake.userMessage({ channelId: dm.id, content: 'in private' });
    const second = fake.userMessage({ channelId: dm.id, content: 'still private' });
    const a = await h.waitForQueued((m) => m.id === first.id, 'the first DM');
    const b = await h.waitForQueued((m) => m.id === second.id, 'the second DM');
    expect(a.conversation).toBe(`discord:dm:${dm.id}`);
    expect(b.conversation).toBe(a.conversation);
    expect(a.route).toEqual({ channelId: dm.id });
  });

  it('takes attachments into the blob store and leaves out the ones over the size cap', async () => {
    const { fake } = h;
    const small = Buffer.from('a,b\n1,2\n');
    const message = fake.userMessage({
      channelId: fake.channels.general.id,
      content: 'sum this',
      mention: true,
      attachments: [
        { filename: 'data.csv', data: small },
        { filename: '../../etc/big.bin', data: Buffer.alloc(4096, 1) },
      ],
    });
    const queued = await h.waitForQueued((m) => m.id === message.id, 'the message with files');
    expect(queued.files).toHaveLength(1);
    expect(queued.files[0]).toMatchObject({ name: 'data.csv', size: small.length });
    expect(await h.deps.blobs.get(queued.files[0]!.blobKey)).toEqual(small);
    expect(queued.text).toContain('[attachment not taken: big.bin: 4096 bytes is over the 2048-byte limit]');
    const notice = await fake.waitFor(
      () => fake.botMessages(message.id).find((m) => m.content.includes('not taken')),
      'the notice about the skipped file',
    );
    expect(notice.content).toContain('big.bin');
  });

  it('refuses a user without an allowed role, a channel not allowed and DMs, and records it', async () => {
    const { fake } = restricted;
    fake.userMessage({
      channelId: fake.channels.general.id,
      content: 'let me in',
      mention: true,
      author: fake.users.mallory,
    });
    const refusal = await fake.waitFor(
      () => fake.botMessages(fake.channels.general.id).find((m) => m.content.includes('roles allowed')),
      'the refusal',
    );
    expect(refusal.content).toContain(`<@${fake.users.mallory.id}>`);
    fake.userMessage({ channelId: fake.channels.closed.id, content: 'here?', mention: true });
    const closed = await fake.waitFor(
      () => newest(fake.botMessages(fake.channels.closed.id)),
      'the channel refusal',
    );
    expect(closed.content).toContain('not enabled in this channel');
    const dm = fake.dmChannel(fake.users.alice);
    fake.userMessage({ channelId: dm.id, content: 'psst' });
    const dmRefusal = await fake.waitFor(() => newest(fake.botMessages(dm.id)), 'the DM refusal');
    expect(dmRefusal.content).toContain('does not take direct messages');
    // Refused twice in a row: told once, not on every message.
    fake.userMessage({ channelId: fake.channels.closed.id, content: 'hello??', mention: true });
    const allowed = fake.userMessage({
      channelId: fake.channels.general.id,
      content: 'ok',
      mention: true,
      author: fake.users.bob,
    });
    await restricted.waitForQueued((m) => m.id === allowed.id, 'an allowed message after the refusals');
    expect(fake.botMessages(fake.channels.closed.id)).toHaveLength(1);

    const audits = restricted.logs.filter((l) => l.audit === 'access_refused');
    expect(audits).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ level: 40, user: fake.users.mallory.id, reason: 'role', via: 'message' }),
        expect.objectContaining({ channel: fake.channels.closed.id, reason: 'channel' }),
        expect.objectContaining({ channel: dm.id, reason: 'dm' }),
      ]),
    );
    expect((await restricted.queued()).map((m) => m.id)).toEqual([allowed.id]);
  });
});
