import { describe, expect, it } from 'vitest';
import { attachmentUrlAllowed, safeFileName } from '../../adapters/discord/attachments.js';
import {
  DiscordRoute,
  discordConversationId,
  INTERACTION_TOKEN_MS,
  interactionRoute,
  liveInteraction,
  placeConversationId,
  threadName,
} from '../../adapters/discord/conversation.js';
import {
  InteractionCreate,
  MessageCreate,
  placeOf,
  stripMentions,
  toSlashCommand,
  toUserMessage,
} from '../../adapters/discord/payloads.js';

const BOT = '111111111111111111';
const GUILD = '222222222222222222';
const CHANNEL = '333333333333333333';
const USER = '444444444444444444';
const ROLE = '555555555555555555';
const PARENT = '666666666666666666';

/** A MESSAGE_CREATE as Discord sends it (with fields the adapter does not read). */
function messageCreate(overrides: Record<string, unknown> = {}) {
  return {
    id: '666666666666666666',
    channel_id: CHANNEL,
    guild_id: GUILD,
    author: { id: USER, username: 'ada', global_name: 'Ada L.', discriminator: '0', avatar: null },
    member: { roles: [ROLE], joined_at: '2024-01-01T00:00:00.000000+00:00', deaf: false, mute: false },
    content: `<@${BOT}> please   summarize`,
    timestamp: '2024-01-01T00:00:00.000000+00:00',
    tts: false,
    mention_everyone: false,
    mentions: [{ id: BOT, username: 'sandbot', bot: true }],
    mention_roles: [],
    attachments: [
      {
        id: '777777777777777777',
        filename: 'a.txt',
        size: 3,
        url: 'https://cdn.discordapp.com/a.txt',
        proxy_url: 'x',
      },
    ],
    embeds: [],
    pinned: false,
    type: 0,
    ...overrides,
  };
}

describe('MESSAGE_CREATE', () => {
  it('becomes a user message: mention detected and removed, roles and attachments kept', () => {
    const message = toUserMessage(MessageCreate.parse(messageCreate()), BOT);
    expect(message).toEqual({
      kind: 'message',
      id: '666666666666666666',
      channelId: CHANNEL,
      guildId: GUILD,
      user: { id: USER, name: 'Ada L.' },
      roles: [ROLE],
      text: 'please summarize',
      mentioned: true,
      attachments: [
        { id: '777777777777777777', filename: 'a.txt', size: 3, url: 'https://cdn.discordapp.com/a.txt' },
      ],
    });
  });

  it('finds a mention in the text even when `mentions` is empty (nickname form <@!id>)', () => {
    const message = toUserMessage(
      MessageCreate.parse(messageCreate({ mentions: [], content: `hey <@!${BOT}>, go` })),
      BOT,
    );
    expect(message).toMatchObject({ mentioned: true, text: 'hey , go' });
    const plain = toUserMessage(
      MessageCreate.parse(messageCreate({ mentions: [], content: 'no ping' })),
      BOT,
    );
    expect(plain).toMatchObject({ mentioned: false, text: 'no ping' });
  });

  it('ignores its own messages, other bots, webhooks and system messages', () => {
    const parse = (o: Record<string, unknown>) => toUserMessage(MessageCreate.parse(messageCreate(o)), BOT);
    expect(parse({ author: { id: BOT, username: 'sandbot', bot: true } })).toEqual({
      kind: 'ignore',
      reason: 'own',
    });
    expect(parse({ author: { id: USER, username: 'x', bot: true } })).toEqual({
      kind: 'ignore',
      reason: 'bot',
    });
    expect(parse({ webhook_id: '888888888888888888' })).toEqual({ kind: 'ignore', reason: 'webhook' });
    expect(parse({ type: 18 })).toEqual({ kind: 'ignore', reason: 'system' });
    expect(parse({ type: 19 })).toMatchObject({ kind: 'message' });
  });

  it('rejects payloads missing what the adapter relies on', () => {
    expect(MessageCreate.safeParse(messageCreate({ author: undefined })).success).toBe(false);
    expect(MessageCreate.safeParse(messageCreate({ channel_id: 'general' })).success).toBe(false);
    expect(
      MessageCreate.safeParse(messageCreate({ attachments: [{ id: '1', filename: 'x' }] })).success,
    ).toBe(false);
  });

  it('strips every mention of the bot and squeezes the spaces left', () => {
    expect(stripMentions(`<@${BOT}>  do <@!${BOT}> this `, BOT)).toBe('do this');
    expect(stripMentions('<@999999999999999999> stays', BOT)).toBe('<@999999999999999999> stays');
  });
});

describe('INTERACTION_CREATE', () => {
  const base = {
    id: '900000000000000001',
    application_id: BOT,
    type: 2,
    token: 'tok',
    version: 1,
    data: { id: '1', name: 'ask', type: 1, options: [{ name: 'task', type: 3, value: 'do it' }] },
    locale: 'en-US',
  };

  it('in a guild thread: the member’s roles, and the thread as the place', () => {
    const command = toSlashCommand(
      InteractionCreate.parse({
        ...base,
        guild_id: GUILD,
        channel_id: CHANNEL,
        channel: { id: CHANNEL, type: 11, guild_id: GUILD, parent_id: '123456789012345678', owner_id: BOT },
        member: { user: { id: USER, username: 'ada' }, roles: [ROLE], permissions: '0' },
      }),
    );
    expect(command).toEqual({
      id: '900000000000000001',
      token: 'tok',
      applicationId: BOT,
      name: 'ask',
      options: { task: 'do it' },
      user: { id: USER, name: 'ada' },
      roles: [ROLE],
      place: {
        kind: 'thread',
        guildId: GUILD,
        channelId: CHANNEL,
        parentId: '123456789012345678',
        ownerId: BOT,
      },
    });
  });

  it('in a DM: the user, no roles', () => {
    const command = toSlashCommand(
      InteractionCreate.parse({
        ...base,
        channel_id: CHANNEL,
        channel: { id: CHANNEL, type: 1 },
        user: { id: USER, username: 'ada' },
      }),
    );
    expect(command).toMatchObject({ roles: [], place: { kind: 'dm', channelId: CHANNEL } });
  });

  it('other interaction kinds (components, autocomplete) are none of its business', () => {
    expect(
      toSlashCommand(
        InteractionCreate.parse({ ...base, type: 3, channel_id: CHANNEL, user: { id: USER, username: 'a' } }),
      ),
    ).toBeNull();
  });
});

describe('places and conversations', () => {
  it('tells DMs, threads, text channels and other channels apart', () => {
    expect(placeOf({ id: CHANNEL, type: 0 }, GUILD)).toEqual({
      kind: 'channel',
      guildId: GUILD,
      channelId: CHANNEL,
      threadable: true,
    });
    expect(placeOf({ id: CHANNEL, type: 15 }, GUILD)).toMatchObject({ kind: 'channel', threadable: false });
    expect(placeOf({ id: CHANNEL, type: 12, parent_id: null }, GUILD)).toEqual({
      kind: 'thread',
      guildId: GUILD,
      channelId: CHANNEL,
    });
    expect(placeOf({ id: CHANNEL, type: 0 }, undefined)).toEqual({ kind: 'dm', channelId: CHANNEL });
  });

  it('derives stable conversation ids', () => {
    expect(discordConversationId(GUILD, CHANNEL, PARENT)).toBe(`discord:${GUILD}:${PARENT}:${CHANNEL}`);
    expect(
      placeConversationId({ kind: 'thread', guildId: GUILD, channelId: CHANNEL, parentId: PARENT }),
    ).toBe(`discord:${GUILD}:${PARENT}:${CHANNEL}`);
    expect(discordConversationId(GUILD, CHANNEL)).toBe(`discord:${GUILD}:${CHANNEL}`);
    expect(discordConversationId(undefined, CHANNEL)).toBe(`discord:dm:${CHANNEL}`);
    expect(() => discordConversationId(GUILD, 'not/an/id')).toThrow();
  });

  it('names a thread after the task’s first line, without mentions, within 100 characters', () => {
    expect(threadName('\n  fix the build \nthen test')).toBe('fix the build');
    expect(threadName(`<@${BOT}> <#${CHANNEL}>`)).toBe('sandbot task');
    const long = threadName('x'.repeat(300));
    expect(long).toHaveLength(100);
    expect(long.endsWith('…')).toBe(true);
  });

  it('uses an interaction token only while it lives, with a margin', () => {
    const route = DiscordRoute.parse(
      interactionRoute(CHANNEL, GUILD, { applicationId: BOT, token: 'tok' }, 1_000_000),
    );
    expect(route.interactionExpiresAt).toBe(1_000_000 + INTERACTION_TOKEN_MS);
    expect(liveInteraction(route, 1_000_000 + 60_000)).toEqual({ applicationId: BOT, token: 'tok' });
    expect(liveInteraction(route, 1_000_000 + INTERACTION_TOKEN_MS - 10_000)).toBeNull();
    expect(liveInteraction(DiscordRoute.parse({ channelId: CHANNEL }), 0)).toBeNull();
    expect(DiscordRoute.safeParse({ threadTs: '1.2' }).success).toBe(false);
  });
});

describe('attachments', () => {
  it('keeps file names to one safe path segment', () => {
    expect(safeFileName('../../etc/passwd')).toBe('passwd');
    expect(safeFileName('C:\\temp\\r.txt')).toBe('r.txt');
    expect(safeFileName('a\u0000b\n.txt')).toBe('ab.txt');
    expect(safeFileName('..')).toBe('file');
    expect(safeFileName('x'.repeat(300))).toHaveLength(255);
  });

  it('fetches only from Discord’s CDN or the configured API host', () => {
    const api = 'https://discord.com/api';
    expect(attachmentUrlAllowed('https://cdn.discordapp.com/attachments/1/2/a.txt', api)).toBe(true);
    expect(attachmentUrlAllowed('http://cdn.discordapp.com/a.txt', api)).toBe(false);
    expect(attachmentUrlAllowed('http://169.254.169.254/latest/meta-data', api)).toBe(false);
    expect(attachmentUrlAllowed('http://127.0.0.1:9999/attachments/a', 'http://127.0.0.1:9999/api')).toBe(
      true,
    );
    expect(attachmentUrlAllowed('not a url', api)).toBe(false);
  });
});
