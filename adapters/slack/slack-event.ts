import { z } from 'zod';
import { ConversationId } from '../../src/contracts/conversation/id.js';
import { toPlainText } from './slack-text.js';

/** Slack ids (team, channel, user) as they appear in payloads; also valid conversation-id segments. */
export const SlackId = z.string().regex(/^[A-Za-z0-9]{1,64}$/, 'a Slack id like T0123 or C0123');
/** A message timestamp, Slack's message id within a channel, e.g. "1700000000.000100". */
export const SlackTs = z.string().regex(/^\d{1,12}\.\d{1,8}$/, 'a Slack message ts like 1700000000.000100');

/** The parts of a file object in a message event that sandbot uses. */
export const SlackFile = z.object({
  id: z.string(),
  name: z.string().optional(),
  title: z.string().optional(),
  size: z.number().int().nonnegative().optional(),
  mimetype: z.string().optional(),
  mode: z.string().optional(),
  url_private_download: z.string().url().optional(),
  url_private: z.string().url().optional(),
});
export type SlackFile = z.infer<typeof SlackFile>;

/** A `message` or `app_mention` event, as far as sandbot reads it. */
export const SlackMessageEvent = z.object({
  type: z.enum(['message', 'app_mention']),
  subtype: z.string().optional(),
  channel: SlackId,
  channel_type: z.string().optional(),
  user: SlackId.optional(),
  bot_id: z.string().optional(),
  text: z.string().default(''),
  ts: SlackTs,
  thread_ts: SlackTs.optional(),
  team: z.string().optional(),
  user_team: z.string().optional(),
  files: z.array(SlackFile).default([]),
});
export type SlackMessageEvent = z.infer<typeof SlackMessageEvent>;

/** The Events API envelope around it (the same over HTTP and Socket Mode). */
export const SlackEventBody = z.object({
  team_id: SlackId,
  event_id: z.string().optional(),
  event: SlackMessageEvent,
});
export type SlackEventBody = z.infer<typeof SlackEventBody>;

/**
 * Where the adapter answers: stored in `InboundMessage.route` and handed back on every outbound event
 * of the turn. `thread_ts` is absent at a DM's top level (answers go to the DM itself); `ts` is the
 * message the reactions go on (absent for slash commands).
 */
export const SlackRoute = z.object({
  team: SlackId,
  channel: SlackId,
  thread_ts: SlackTs.optional(),
  ts: SlackTs.optional(),
  user: SlackId.optional(),
});
export type SlackRoute = z.infer<typeof SlackRoute>;

/** Subtypes that are still a person writing to the agent; every other subtype is ignored. */
const PERSON_SUBTYPES = new Set(['file_share', 'thread_broadcast']);

export interface SlackIntake {
  conversation: ConversationId;
  /** Inbound message id: Slack's own channel + ts, so a retried or doubly delivered event dedupes. */
  messageId: string;
  route: SlackRoute;
  user: string;
  text: string;
  files: SlackFile[];
  dm: boolean;
  /** A plain message in a channel thread reaches the agent only where the agent already works. */
  needsKnownThread: boolean;
  /** Every team id the event names: all must be allowed. */
  teams: string[];
}

export type Classified = { kind: 'ignore'; reason: string } | ({ kind: 'intake' } & SlackIntake);

export function isDirectMessage(channel: string, channelType?: string): boolean {
  return channelType === 'im' || (channelType === undefined && channel.startsWith('D'));
}

export function slackConversationId(team: string, channel: string, threadTs: string): ConversationId {
  return ConversationId.parse(`slack:${team}:${channel}:${threadTs}`);
}

/**
 * Decides what an event means for sandbot: a mention in a channel starts (or continues) the thread's
 * conversation; a plain message counts in a DM, or in a thread the agent already works in; the bot's
 * own and other bots' messages, edits, joins and the like are ignored.
 */
export function classifyEvent(body: SlackEventBody, botUserId: string | undefined): Classified {
  const event = body.event;
  if (event.subtype !== undefined && !PERSON_SUBTYPES.has(event.subtype)) {
    return { kind: 'ignore', reason: `subtype ${event.subtype}` };
  }
  if (event.bot_id !== undefined) return { kind: 'ignore', reason: 'a bot wrote it' };
  if (event.user === undefined) return { kind: 'ignore', reason: 'no user' };
  if (botUserId !== undefined && event.user === botUserId)
    return { kind: 'ignore', reason: 'our own message' };
  const team = body.team_id;
  const dm = isDirectMessage(event.channel, event.channel_type);
  let threadTs: string;
  let replyThread: string | undefined;
  let needsKnownThread = false;
  if (dm) {
    // A DM's top level is one conversation, answered at the top level; a thread in a DM is its own.
    threadTs = event.thread_ts ?? 'dm';
    replyThread = event.thread_ts;
  } else if (event.type === 'app_mention') {
    threadTs = event.thread_ts ?? event.ts;
    replyThread = threadTs;
  } else if (event.thread_ts !== undefined) {
    threadTs = event.thread_ts;
    replyThread = threadTs;
    needsKnownThread = true;
  } else {
    // A top-level channel message: its mention (if any) arrives again as app_mention, handled there.
    return { kind: 'ignore', reason: 'channel message without a mention' };
  }
  const teams = [...new Set([team, event.user_team ?? event.team ?? team])];
  return {
    kind: 'intake',
    conversation: slackConversationId(team, event.channel, threadTs),
    messageId: `slack:${event.channel}:${event.ts}`,
    route: SlackRoute.parse({
      team,
      channel: event.channel,
      ts: event.ts,
      user: event.user,
      ...(replyThread === undefined ? {} : { thread_ts: replyThread }),
    }),
    user: event.user,
    text: toPlainText(event.text, botUserId),
    files: event.files,
    dm,
    needsKnownThread,
    teams,
  };
}
