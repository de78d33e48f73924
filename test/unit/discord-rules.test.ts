import { describe, expect, it } from 'vitest';
import { type AccessPolicy, decideAccess } from '../../adapters/discord/access.js';
import { describeStatus } from '../../adapters/discord/command-handler.js';
import { SLASH_COMMANDS } from '../../adapters/discord/commands.js';
import { discordInviteUrl } from '../../adapters/discord/invite.js';
import type { Place, SlashCommand, UserMessage } from '../../adapters/discord/payloads.js';
import { planCommand, planMessage } from '../../adapters/discord/plans.js';
import { renderProgress } from '../../adapters/discord/progress-message.js';
import { ConversationId } from '../../src/contracts/conversation/id.js';

const G = '100000000000000001';
const TEXT = '100000000000000002';
const THREAD = '100000000000000003';
const DM = '100000000000000004';
const BOT = '100000000000000005';
const CREW = '200000000000000001';
const ADMIN = '200000000000000002';

const open: AccessPolicy = { guilds: [], channels: [], roles: [] };
const strict: AccessPolicy = { guilds: [G], channels: [TEXT], roles: [CREW], adminRole: ADMIN };
const channel: Place = { kind: 'channel', guildId: G, channelId: TEXT, threadable: true };
const thread: Place = { kind: 'thread', guildId: G, channelId: THREAD, parentId: TEXT, ownerId: BOT };
const dm: Place = { kind: 'dm', channelId: DM };

describe('access policy', () => {
  it('lets everyone in when nothing is restricted, except to admin commands', () => {
    expect(decideAccess(open, channel, [])).toEqual({ allowed: true });
    expect(decideAccess(open, dm, [])).toEqual({ allowed: true });
    expect(decideAccess(open, channel, [], 'admin')).toMatchObject({
      allowed: false,
      reason: 'admin',
      message: expect.stringContaining('DISCORD_ADMIN_ROLE'),
    });
  });

  it('checks guild, channel (a thread counts as its parent) and role, in that order', () => {
    expect(decideAccess(strict, { ...channel, guildId: '100000000000000099' }, [CREW])).toMatchObject({
      reason: 'guild',
    });
    expect(decideAccess(strict, { ...channel, channelId: '100000000000000099' }, [CREW])).toMatchObject({
      reason: 'channel',
    });
    expect(decideAccess(strict, thread, [CREW])).toEqual({ allowed: true });
    expect(decideAccess(strict, { ...thread, parentId: '100000000000000099' }, [CREW])).toMatchObject({
      reason: 'channel',
    });
    expect(decideAccess(strict, channel, [])).toMatchObject({ reason: 'role' });
    expect(decideAccess(strict, channel, [ADMIN])).toEqual({ allowed: true }); // admins are allowed users
    expect(decideAccess(strict, channel, [CREW], 'admin')).toMatchObject({
      reason: 'admin',
      message: 'This command needs the sandbot admin role.',
    });
    expect(decideAccess(strict, channel, [ADMIN], 'admin')).toEqual({ allowed: true });
  });

  it('refuses DMs while guilds or roles are restricted (a DM carries neither)', () => {
    expect(decideAccess({ ...open, roles: [CREW] }, dm, [])).toMatchObject({ reason: 'dm' });
    expect(decideAccess({ ...open, guilds: [G] }, dm, [])).toMatchObject({ reason: 'dm' });
    expect(decideAccess({ ...open, channels: [DM] }, dm, [])).toEqual({ allowed: true });
    expect(decideAccess({ ...open, channels: [TEXT] }, dm, [])).toMatchObject({ reason: 'channel' });
  });
});

function message(overrides: Partial<Extract<UserMessage, { kind: 'message' }>> = {}) {
  return {
    kind: 'message' as const,
    id: '300000000000000001',
    channelId: TEXT,
    user: { id: '300000000000000002', name: 'ada' },
    roles: [CREW],
    text: 'hi',
    mentioned: false,
    attachments: [],
    ...overrides,
  };
}

describe('which messages are conversations', () => {
  const context = { botId: BOT, trackedThread: false, policy: open };

  it('a mention in a channel opens a thread; chatter is ignored', () => {
    expect(planMessage(message({ mentioned: true }), channel, context)).toEqual({
      kind: 'open-thread',
      guildId: G,
      channelId: TEXT,
    });
    expect(planMessage(message(), channel, context)).toEqual({ kind: 'ignore' });
    expect(planMessage(message({ mentioned: true }), { ...channel, threadable: false }, context)).toEqual({
      kind: 'ignore',
    });
  });

  it('sandbot’s threads hear every message; other threads only mentions, which take them on', () => {
    const conversation = ConversationId.parse(`discord:${G}:${TEXT}:${THREAD}`);
    expect(planMessage(message(), thread, context)).toEqual({
      kind: 'submit',
      conversation,
      channelId: THREAD,
      guildId: G,
      track: false,
    });
    const users = { ...thread, ownerId: '300000000000000002' };
    expect(planMessage(message(), users, context)).toEqual({ kind: 'ignore' });
    expect(planMessage(message(), users, { ...context, trackedThread: true })).toMatchObject({
      kind: 'submit',
      track: false,
    });
    expect(planMessage(message({ mentioned: true }), users, context)).toMatchObject({
      kind: 'submit',
      track: true,
    });
  });

  it('a DM is always addressed to sandbot, and refused by policy like anything else', () => {
    expect(planMessage(message(), dm, context)).toMatchObject({
      kind: 'submit',
      conversation: `discord:dm:${DM}`,
    });
    expect(planMessage(message(), dm, { ...context, policy: strict })).toMatchObject({
      kind: 'refuse',
      reason: 'dm',
    });
    // Refusals only for what was addressed to sandbot: a stranger's chatter is just ignored.
    expect(planMessage(message({ roles: [] }), channel, { ...context, policy: strict })).toEqual({
      kind: 'ignore',
    });
  });
});

function command(
  name: string,
  place: Place,
  options: Record<string, string> = {},
  roles = [CREW],
): SlashCommand {
  return {
    id: '1',
    token: 't',
    applicationId: BOT,
    name,
    options,
    user: { id: '2', name: 'ada' },
    roles,
    place,
  };
}

describe('what a slash command does', () => {
  it('/ask in a channel opens a thread; in a thread or DM it joins that conversation', () => {
    expect(planCommand(command('ask', channel, { task: ' go ' }), open)).toEqual({
      kind: 'ask-thread',
      task: 'go',
      channelId: TEXT,
      guildId: G,
    });
    expect(planCommand(command('ask', thread, { task: 'go' }), open)).toMatchObject({
      kind: 'ask-here',
      conversation: `discord:${G}:${TEXT}:${THREAD}`,
    });
    expect(planCommand(command('ask', dm, { task: 'go' }), open)).toMatchObject({
      kind: 'ask-here',
      conversation: `discord:dm:${DM}`,
    });
    expect(planCommand(command('ask', channel, { task: '  ' }), open)).toMatchObject({ kind: 'notice' });
  });

  it('conversation commands need a thread or DM; admin commands the admin role', () => {
    expect(planCommand(command('status', channel), open)).toMatchObject({
      kind: 'notice',
      message: expect.stringContaining('inside a sandbot thread'),
    });
    expect(planCommand(command('status', thread), open)).toMatchObject({
      kind: 'status',
      channelId: THREAD,
      guildId: G,
    });
    expect(planCommand(command('reset', dm), open)).toMatchObject({ kind: 'reset', channelId: DM });
    expect(planCommand(command('run', thread, { command: 'ls' }), strict)).toMatchObject({
      kind: 'refuse',
      reason: 'admin',
    });
    expect(planCommand(command('run', thread, { command: 'ls' }, [ADMIN]), strict)).toMatchObject({
      kind: 'run',
      command: 'ls',
    });
    expect(planCommand(command('kill', thread, {}, [ADMIN]), strict)).toMatchObject({ kind: 'kill' });
    expect(planCommand(command('network', thread, { hosts: 'off' }, [ADMIN]), strict)).toMatchObject({
      kind: 'network',
      words: ['off'],
    });
    expect(planCommand(command('network', thread, { hosts: 'pypi.org' }, [ADMIN]), strict)).toMatchObject({
      kind: 'network',
      words: ['allow', 'pypi.org'],
    });
    expect(planCommand(command('network', thread, {}, [CREW]), strict)).toMatchObject({
      kind: 'refuse',
      reason: 'admin',
    });
    expect(planCommand(command('dance', thread), open)).toMatchObject({ kind: 'notice' });
  });

  it('plans /schedule in a conversation and /schedules for the channel it is used in', () => {
    expect(
      planCommand(command('schedule', thread, { when: ' every 15m ', task: 'tick' }), open),
    ).toMatchObject({
      kind: 'schedule',
      when: 'every 15m',
      task: 'tick',
      conversation: `discord:${G}:${TEXT}:${THREAD}`,
    });
    expect(planCommand(command('schedule', channel, { when: 'every 15m', task: 'x' }), open)).toMatchObject({
      kind: 'notice',
    });
    expect(planCommand(command('schedules', thread), open)).toEqual({
      kind: 'schedules',
      words: ['list'],
      channel: `discord:${G}:${TEXT}`,
    });
    expect(planCommand(command('schedules', channel, { action: 'pause', id: 's-1' }), open)).toEqual({
      kind: 'schedules',
      words: ['pause', 's-1'],
      channel: `discord:${G}:${TEXT}`,
    });
    expect(planCommand(command('schedules', dm), open)).toMatchObject({ channel: `discord:dm:${DM}` });
  });

  it('every command it plans for is one it registers', () => {
    expect(SLASH_COMMANDS.map((c) => c.name)).toEqual([
      'ask',
      'run',
      'status',
      'reset',
      'stop',
      'tasks',
      'done',
      'kill',
      'network',
      'skill',
      'schedule',
      'schedules',
    ]);
    for (const c of SLASH_COMMANDS) {
      expect(c.description.length).toBeLessThanOrEqual(100);
      for (const option of 'options' in c ? c.options : [])
        expect(option.description.length).toBeLessThanOrEqual(100);
    }
  });
});

describe('status and progress texts', () => {
  const conversation = ConversationId.parse(`discord:${G}:${TEXT}:${THREAD}`);
  it('says whether a turn runs, what waits, and when the last turn ended', () => {
    expect(describeStatus({ conversation, turnRunning: false, pending: 0 })).toBe('💤 Idle. No turn yet.');
    expect(describeStatus({ conversation, turnRunning: true, pending: 2 })).toBe(
      '⏳ Working on a turn now. 2 messages in this and the next turns.',
    );
    expect(
      describeStatus({
        conversation,
        turnRunning: false,
        pending: 1,
        lastTurnAt: '2025-01-01T00:00:00.000Z',
      }),
    ).toBe('💤 Idle. 1 message waiting. Last turn finished <t:1735689600:R>.');
  });

  it('shows the latest steps in a code block that step text cannot break', () => {
    expect(renderProgress('working…', [], 0, false)).toBe('⏳ working…');
    expect(renderProgress('working…', ['bash: echo ```x```'], 12, false)).toBe(
      "⏳ working…\n```\n… 11 earlier\nbash: echo '''x'''\n```",
    );
    expect(renderProgress('working…', ['a'], 1, true)).toBe('✅ done (1 step)\n```\na\n```');
  });
});

describe('invite URL', () => {
  it('asks for the bot and commands scopes and exactly the permissions sandbot uses', () => {
    const url = new URL(discordInviteUrl(BOT));
    expect(url.origin + url.pathname).toBe('https://discord.com/oauth2/authorize');
    expect(url.searchParams.get('client_id')).toBe(BOT);
    expect(url.searchParams.get('scope')).toBe('bot applications.commands');
    // View Channels, Send Messages, Attach Files, Read Message History, Create Public Threads, Send Messages in Threads.
    const expected = (1n << 10n) | (1n << 11n) | (1n << 15n) | (1n << 16n) | (1n << 35n) | (1n << 38n);
    expect(url.searchParams.get('permissions')).toBe(expected.toString());
    expect(() => discordInviteUrl('my-app')).toThrow();
  });
});
