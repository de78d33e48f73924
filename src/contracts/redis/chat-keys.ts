import { type ConversationId, shortHash } from '../conversation/id.js';

/**
 * The chat adapters' own Redis keys (Slack's and Discord's state, in Redis so every gateway sees it),
 * with how long each lives. The key strings are fixed: changing one strands what Redis holds.
 */

const DAY = 86_400;

export function slackKeys(instance: string) {
  const base = `${instance}:slack`;
  return {
    /** A channel thread the agent works in: later messages there need no mention. */
    thread: (conversation: ConversationId) => `${base}:thread:${shortHash(conversation)}`,
    /** Someone refused recently: they get one polite answer, not one per message. */
    refused: (team: string, channel: string, user: string) => `${base}:refused:${team}:${channel}:${user}`,
    /** The conversation a person last wrote in, per channel: what `/sandbot stop` acts on there. */
    lastConversation: (team: string, channel: string, user: string) =>
      `${base}:last:${team}:${channel}:${user}`,
    userName: (team: string, user: string) => `${base}:user:${team}:${user}`,
    /** One part of an outbound event: claimed while it is posted, then marked done. */
    delivery: (key: string) => `${base}:sent:${shortHash(key)}`,
    /** Per turn: the progress message (hash: channel, ts, last update, final state) and its steps. */
    progress: (turnId: string) => `${base}:progress:${shortHash(turnId)}`,
    progressSteps: (turnId: string) => `${base}:progress:${shortHash(turnId)}:steps`,
    progressLock: (turnId: string) => `${base}:progress:${shortHash(turnId)}:lock`,
  };
}
export type SlackKeys = ReturnType<typeof slackKeys>;

/** How long Slack's keys live, in seconds. */
export const SLACK_TTL = {
  thread: 90 * DAY,
  lastConversation: 90 * DAY,
  refused: DAY,
  userName: DAY,
  progress: DAY,
  /** Posting the progress message: one gateway at a time. */
  progressLock: 60,
  /** A delivered part stays marked longer than the outbound queue could retry it. */
  delivered: 7 * DAY,
  /** A claim being posted: long enough for the web client's own retries (429 waits included). */
  pending: 120,
} as const;

export function discordKeys(instance: string) {
  const base = `${instance}:discord`;
  return {
    /** Threads sandbot took part in (started, was mentioned or commanded in). */
    thread: (threadId: string) => `${base}:thread:${threadId}`,
    /** Someone refused recently in a channel: told once per window, not per message. */
    refused: (user: string, channel: string) => `${base}:refused:${user}:${channel}`,
    /** One post of an outbound event: claimed while it is posted, then marked done. */
    delivered: (id: string) => `${base}:delivered:${shortHash(id)}`,
    /** Per turn: the progress message (hash: header, messageId, total, finished) and its latest steps. */
    progress: (turnId: string) => `${base}:progress:${shortHash(turnId)}`,
    progressSteps: (turnId: string) => `${base}:progress:${shortHash(turnId)}:steps`,
  };
}
export type DiscordKeys = ReturnType<typeof discordKeys>;

/** How long Discord's keys live, in seconds. */
export const DISCORD_TTL = {
  /** Taken-on threads are remembered for 90 days from their last message. */
  thread: 90 * DAY,
  /** How often one user is told "not allowed" in one channel (a refusal per message would be spam). */
  refused: 60,
  progress: DAY,
  delivered: 7 * DAY,
  /** A claim being posted. */
  pending: 60,
} as const;

/** Where a chat platform marks the parts it delivered, and how long a claim and a done mark last. */
export interface DeliveryLayout {
  key(id: string): string;
  claimSeconds: number;
  doneSeconds: number;
}

export function deliveryLayout(instance: string, platform: 'slack' | 'discord'): DeliveryLayout {
  if (platform === 'slack') {
    return {
      key: slackKeys(instance).delivery,
      claimSeconds: SLACK_TTL.pending,
      doneSeconds: SLACK_TTL.delivered,
    };
  }
  return {
    key: discordKeys(instance).delivered,
    claimSeconds: DISCORD_TTL.pending,
    doneSeconds: DISCORD_TTL.delivered,
  };
}
