import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { type ConversationId, shortHash } from '../../src/contracts/conversation/id.js';

const DAY = 86_400;

/** The Slack adapter's own Redis keys, so every gateway sees the same state. */
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
    delivery: (key: string) => `${base}:sent:${shortHash(key)}`,
    /** Per turn: the progress message (hash: channel, ts, last update, final state) and its steps. */
    progress: (turnId: string) => `${base}:progress:${shortHash(turnId)}`,
    progressSteps: (turnId: string) => `${base}:progress:${shortHash(turnId)}:steps`,
    progressLock: (turnId: string) => `${base}:progress:${shortHash(turnId)}:lock`,
  };
}
export type SlackKeys = ReturnType<typeof slackKeys>;

export const TTL = {
  thread: 90 * DAY,
  lastConversation: 90 * DAY,
  refused: DAY,
  userName: DAY,
  progress: DAY,
  /** A delivered part stays marked longer than the outbound queue could retry it. */
  delivered: 7 * DAY,
  /** A claim being posted: long enough for the web client's own retries (429 waits included). */
  pending: 120,
} as const;

const RELEASE_IF_MINE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

/**
 * Posts each part of an outbound event at most once across retries and gateways. A part is claimed
 * (SET NX, short expiry) before it is posted and marked done after; a failure releases the claim so the
 * queue's retry posts it. Crash window: a gateway that dies after Slack accepted a post but before it
 * marked the part done leaves a claim that expires, and the retry posts that part a second time.
 * A gateway that dies before posting delays the part by at most the claim's expiry.
 */
export class DeliveryClaims {
  constructor(
    private readonly redis: Redis,
    private readonly keys: SlackKeys,
  ) {}

  async once(key: string, post: () => Promise<void>): Promise<'posted' | 'already'> {
    const redisKey = this.keys.delivery(key);
    const token = `pending:${randomUUID()}`;
    const claimed = await this.redis.set(redisKey, token, 'EX', TTL.pending, 'NX');
    if (claimed === null) {
      if ((await this.redis.get(redisKey)) === 'done') return 'already';
      // Another delivery of the same part is under way (or died): retry after it settles or expires.
      throw new Error(`delivery of ${key} is in progress elsewhere; the queue will retry it`);
    }
    try {
      await post();
    } catch (error) {
      await this.redis.eval(RELEASE_IF_MINE, 1, redisKey, token).catch(() => undefined);
      throw error;
    }
    await this.redis.set(redisKey, 'done', 'EX', TTL.delivered);
    return 'posted';
  }
}
