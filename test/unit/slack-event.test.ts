import { describe, expect, it } from 'vitest';
import { progressStep, turnOf } from '../../adapters/slack/delivery.js';
import {
  classifyEvent,
  SlackEventBody,
  SlackRoute,
  slackConversationId,
} from '../../adapters/slack/slack-event.js';
import { InboundMessage } from '../../src/contracts/protocol/inbound.js';

const BOT = 'U0BOT';

function body(event: Record<string, unknown>) {
  return SlackEventBody.parse({
    team_id: 'T1',
    event_id: 'Ev1',
    event: { channel: 'C1', user: 'U1', text: 'hi', ts: '1700000000.000100', ...event },
  });
}

describe('classifyEvent', () => {
  it('starts a thread conversation at a top-level mention, answered in that thread', () => {
    const result = classifyEvent(body({ type: 'app_mention', text: `<@${BOT}> run ls` }), BOT);
    expect(result).toMatchObject({
      kind: 'intake',
      conversation: 'slack:T1:C1:1700000000.000100',
      messageId: 'slack:C1:1700000000.000100',
      route: {
        team: 'T1',
        channel: 'C1',
        thread_ts: '1700000000.000100',
        ts: '1700000000.000100',
        user: 'U1',
      },
      text: 'run ls',
      needsKnownThread: false,
      dm: false,
    });
  });

  it('puts a mention inside a thread, and a plain reply in a thread, in the thread’s conversation', () => {
    const inThread = { thread_ts: '1699999999.000001', ts: '1700000000.000200' };
    const mention = classifyEvent(body({ type: 'app_mention', ...inThread }), BOT);
    const plain = classifyEvent(body({ type: 'message', channel_type: 'channel', ...inThread }), BOT);
    for (const result of [mention, plain]) {
      expect(result).toMatchObject({
        kind: 'intake',
        conversation: 'slack:T1:C1:1699999999.000001',
        messageId: 'slack:C1:1700000000.000200',
      });
    }
    // Only the plain message depends on the agent already working in the thread.
    expect(mention.kind === 'intake' && mention.needsKnownThread).toBe(false);
    expect(plain.kind === 'intake' && plain.needsKnownThread).toBe(true);
  });

  it('gives both events of one mention the same message id, so the queue keeps one', () => {
    const event = { text: `<@${BOT}> go`, thread_ts: '1699999999.000001' };
    const a = classifyEvent(body({ type: 'app_mention', ...event }), BOT);
    const b = classifyEvent(body({ type: 'message', channel_type: 'channel', ...event }), BOT);
    expect(a.kind === 'intake' && b.kind === 'intake' && [a.messageId, a.conversation, a.text]).toEqual(
      b.kind === 'intake' && [b.messageId, b.conversation, b.text],
    );
  });

  it('makes a DM one conversation answered at its top level, and a DM thread its own', () => {
    const top = classifyEvent(body({ type: 'message', channel: 'D1', channel_type: 'im' }), BOT);
    expect(top).toMatchObject({ conversation: 'slack:T1:D1:dm', dm: true, needsKnownThread: false });
    expect(top.kind === 'intake' && top.route.thread_ts).toBeUndefined();
    const thread = classifyEvent(
      body({ type: 'message', channel: 'D1', channel_type: 'im', thread_ts: '1699999999.000001' }),
      BOT,
    );
    expect(thread).toMatchObject({
      conversation: 'slack:T1:D1:1699999999.000001',
      route: { thread_ts: '1699999999.000001' },
    });
  });

  it('ignores top-level channel chatter, bots, itself, and edits', () => {
    const ignored = [
      body({ type: 'message', channel_type: 'channel' }),
      body({ type: 'message', channel_type: 'im', channel: 'D1', bot_id: 'B9', subtype: 'bot_message' }),
      body({ type: 'message', channel_type: 'im', channel: 'D1', bot_id: 'B9' }),
      body({ type: 'message', channel_type: 'im', channel: 'D1', user: BOT }),
      body({ type: 'message', channel_type: 'im', channel: 'D1', subtype: 'message_changed' }),
      body({ type: 'message', channel_type: 'im', channel: 'D1', subtype: 'channel_join' }),
    ];
    for (const b of ignored) expect(classifyEvent(b, BOT).kind).toBe('ignore');
    const share = body({ type: 'message', channel_type: 'im', channel: 'D1', subtype: 'file_share' });
    expect(classifyEvent(share, BOT).kind).toBe('intake');
  });

  it('names every team involved, so a shared channel’s outside user meets the team allowlist', () => {
    const result = classifyEvent(body({ type: 'app_mention', user_team: 'T2' }), BOT);
    expect(result.kind === 'intake' && result.teams).toEqual(['T1', 'T2']);
  });

  it('maps to a valid InboundMessage', () => {
    const result = classifyEvent(body({ type: 'app_mention', text: `<@${BOT}> hello` }), BOT);
    if (result.kind !== 'intake') throw new Error('expected intake');
    const message = InboundMessage.parse({
      id: result.messageId,
      conversation: result.conversation,
      platform: 'slack',
      user: { id: result.user },
      text: result.text,
      receivedAt: new Date().toISOString(),
      route: result.route,
    });
    expect(SlackRoute.parse(message.route)).toEqual(result.route);
  });
});

describe('Slack payload validation', () => {
  it('rejects ids that could not be part of a conversation id, and malformed timestamps', () => {
    const bad = [
      { team_id: 'T1', event: { type: 'message', channel: 'C1/../x', ts: '1.2' } },
      { team_id: 'T:1', event: { type: 'message', channel: 'C1', ts: '1700000000.000100' } },
      { team_id: 'T1', event: { type: 'message', channel: 'C1', ts: 'yesterday' } },
      { team_id: 'T1', event: { type: 'reaction_added', channel: 'C1', ts: '1700000000.000100' } },
    ];
    for (const b of bad) expect(SlackEventBody.safeParse(b).success).toBe(false);
    expect(() => slackConversationId('T1', 'C1', 'dm')).not.toThrow();
  });
});

describe('outbound event ids', () => {
  it('finds the turn and the progress step', () => {
    expect(turnOf({ id: 't-1:progress:tool:3', turnId: 't-1' })).toBe('t-1');
    expect(turnOf({ id: 't-2:progress:start' })).toBe('t-2');
    expect(turnOf({ id: 't-3:reply' })).toBe('t-3');
    expect(progressStep('t-1:progress:tool:3', 't-1')).toBe('tool:3');
    expect(progressStep('t-1:progress:start', 't-1')).toBeUndefined();
  });
});
