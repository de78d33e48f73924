import { describe, expect, it } from 'vitest';
import { accessPolicyFrom, decideAccess, isAdmin, refusalText } from '../../adapters/slack/access.js';
import { formatBytes, safeFileName, tokenMayGoTo, uniqueNames } from '../../adapters/slack/attachments.js';
import { slackMode } from '../../adapters/slack/bolt-app.js';
import {
  parseCommandText,
  parseThreadRef,
  SlashCommandBody,
  statusText,
} from '../../adapters/slack/commands.js';
import { parseConfig } from '../../src/contracts/config/load.js';
import type { ConversationId } from '../../src/contracts/conversation/id.js';

const policy = (env: Record<string, string>) => accessPolicyFrom(parseConfig(env));

describe('access policy', () => {
  it('lets everyone in when no list is set', () => {
    expect(decideAccess(policy({}), { teams: ['T1'], channel: 'C1', user: 'U1' })).toEqual({ allowed: true });
  });

  it('checks workspace, then channel, then user', () => {
    const p = policy({
      SLACK_ALLOWED_TEAMS: 'T1',
      SLACK_ALLOWED_CHANNELS: 'C1, D1',
      SLACK_ALLOWED_USERS: 'U1',
    });
    expect(decideAccess(p, { teams: ['T1'], channel: 'C1', user: 'U1' }).allowed).toBe(true);
    expect(decideAccess(p, { teams: ['T1', 'T2'], channel: 'C1', user: 'U1' })).toEqual({
      allowed: false,
      reason: 'team',
    });
    expect(decideAccess(p, { teams: ['T1'], channel: 'C2', user: 'U1' })).toEqual({
      allowed: false,
      reason: 'channel',
    });
    expect(decideAccess(p, { teams: ['T1'], channel: 'D1', user: 'U2' })).toEqual({
      allowed: false,
      reason: 'user',
    });
  });

  it('lets admins past the user list but not past the workspace or channel lists', () => {
    const p = policy({ SLACK_ALLOWED_CHANNELS: 'C1', SLACK_ALLOWED_USERS: 'U1', SLACK_ADMIN_USERS: 'U9' });
    expect(isAdmin(p, 'U9')).toBe(true);
    expect(isAdmin(p, 'U1')).toBe(false);
    expect(decideAccess(p, { teams: ['T1'], channel: 'C1', user: 'U9' }).allowed).toBe(true);
    expect(decideAccess(p, { teams: ['T1'], channel: 'C2', user: 'U9' }).allowed).toBe(false);
  });

  it('refuses in words that say what to do', () => {
    expect(refusalText('channel')).toMatch(/this channel is not on sandbot's allowlist\. Ask/);
  });
});

describe('transport choice', () => {
  it('uses Socket Mode with an app token, HTTP with a signing secret, and explains when neither is set', () => {
    const base = { SLACK_BOT_TOKEN: 'xoxb-1' };
    expect(slackMode(parseConfig({ ...base, SLACK_APP_TOKEN: 'xapp-1', SLACK_SIGNING_SECRET: 's' }))).toBe(
      'socket',
    );
    expect(slackMode(parseConfig({ ...base, SLACK_SIGNING_SECRET: 's' }))).toBe('http');
    expect(() => slackMode(parseConfig(base))).toThrow(/set one of them/);
  });
});

describe('slash command text', () => {
  it('reads the verb and an optional thread', () => {
    expect(parseCommandText('')).toEqual({ kind: 'verb', verb: 'help', rest: '' });
    expect(parseCommandText('  STOP ')).toEqual({ kind: 'verb', verb: 'stop', rest: '' });
    expect(parseCommandText('status 1700000000.000100')).toMatchObject({
      verb: 'status',
      target: { threadTs: '1700000000.000100' },
    });
    expect(parseCommandText('launch')).toEqual({ kind: 'unknown', word: 'launch' });
  });

  it('reads message links, including replies inside a thread', () => {
    expect(parseThreadRef('<https://acme.slack.com/archives/C0123/p1700000000000100>')).toEqual({
      channel: 'C0123',
      threadTs: '1700000000.000100',
    });
    expect(
      parseThreadRef(
        'https://acme.slack.com/archives/C0123/p1700000005000100?thread_ts=1700000000.000100&cid=C0123',
      ),
    ).toEqual({
      channel: 'C0123',
      threadTs: '1700000000.000100',
    });
    expect(parseThreadRef('https://acme.slack.com/archives/C0123')).toBeUndefined();
    expect(parseThreadRef('not-a-thread')).toBeUndefined();
  });

  it('validates the payload', () => {
    expect(
      SlashCommandBody.safeParse({ command: '/sandbot', team_id: 'T1', channel_id: 'C1', user_id: 'U1' })
        .success,
    ).toBe(true);
    expect(
      SlashCommandBody.safeParse({ command: '/sandbot', team_id: 'T1', channel_id: '../C1', user_id: 'U1' })
        .success,
    ).toBe(false);
  });

  it('describes status in words, with a Slack date for the last turn', () => {
    const conversation = 'slack:T1:C1:dm' as ConversationId;
    expect(statusText({ conversation, turnRunning: true, pending: 2 })).toBe(
      'The agent is working on this conversation (2 messages waiting). No turn has finished yet.',
    );
    expect(
      statusText({ conversation, turnRunning: false, pending: 0, lastTurnAt: '2023-11-14T22:13:20.000Z' }),
    ).toBe(
      'Idle, no messages waiting. Last turn finished <!date^1700000000^{date_short_pretty} at {time}|2023-11-14T22:13:20.000Z>.',
    );
  });
});

describe('attachments', () => {
  it('sends the bot token only to Slack’s hosts', () => {
    const api = 'https://slack.com/api/';
    expect(tokenMayGoTo('https://files.slack.com/files-pri/T1-F1/a.txt', api)).toBe(true);
    expect(tokenMayGoTo('https://slack.com/files-pri/T1-F1/a.txt', api)).toBe(true);
    expect(tokenMayGoTo('https://evil.example/slack.com/a.txt', api)).toBe(false);
    expect(tokenMayGoTo('https://files.slack.com.evil.example/a.txt', api)).toBe(false);
    expect(tokenMayGoTo('http://files.slack.com/a.txt', api)).toBe(false);
    expect(tokenMayGoTo('http://127.0.0.1:4000/files-pri/x', 'http://127.0.0.1:4000/api/')).toBe(true);
    expect(tokenMayGoTo('http://127.0.0.1:4001/files-pri/x', 'http://127.0.0.1:4000/api/')).toBe(false);
  });

  it('makes safe, distinct file names', () => {
    expect(safeFileName('../../etc/passwd', 'F1')).toBe('.._.._etc_passwd');
    expect(safeFileName('..', 'F1')).toBe('file-F1');
    expect(safeFileName(undefined, 'F1')).toBe('file-F1');
    expect(safeFileName('a\u0000b\nc.txt', 'F1')).toBe('a_b_c.txt');
    expect(uniqueNames(['image.png', 'image.png', 'notes', 'notes'])).toEqual([
      'image.png',
      'image (2).png',
      'notes',
      'notes (2)',
    ]);
  });

  it('states sizes people read', () => {
    expect([formatBytes(512), formatBytes(2048), formatBytes(10_485_760), formatBytes(1_572_864)]).toEqual([
      '512 bytes',
      '2 KB',
      '10 MB',
      '1.5 MB',
    ]);
  });
});
