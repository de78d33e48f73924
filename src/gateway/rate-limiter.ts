import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { ConversationId } from '../contracts/conversation/id.js';
import type { InboundMessage } from '../contracts/protocol/inbound.js';
import { conversationKeys, limitKeys } from '../contracts/redis/keys.js';
import { RATE_ADMIT, STREAM_OPEN, STREAM_RENEW } from '../contracts/redis/scripts.js';
import type { NoticeThrottle } from './chat-throttles.js';
import {
  type Admission,
  admissionOf,
  HOUR_MS,
  MINUTE_MS,
  type RateLimitSettings,
  type StreamRefusal,
  streamRefusalOf,
} from './rate-limits.js';

/** One person's message on its way in, before the work of taking it (downloads, threads) is done. */
export interface LimitRequest {
  platform: InboundMessage['platform'];
  user: string;
  messageId: string;
  /** The conversation, when known; it is new unless it took a message before. */
  conversation?: ConversationId;
  /** The message starts a conversation whose id is not known yet (a Discord thread to be opened). */
  startsConversation?: boolean;
}

/** A refusal, and whether this is the first of its wait (then the person is told; later ones are not). */
export type LimitAdmission = { allowed: true } | (Extract<Admission, { allowed: false }> & { tell: boolean });

/** An open event stream's slot; `close` frees it. */
export interface StreamSlot {
  allowed: true;
  close(): Promise<void>;
}

/** How long a stream's slot lives without renewal: a gateway that dies frees its slots after this. */
const STREAM_SLOT_TTL_MS = 60_000;

/**
 * The gateway's rate limits, counted in Redis so they hold across gateways: messages per person per
 * minute, new conversations per person per hour (sliding windows), and open web event streams. Adapters
 * ask before they take a user's message; control commands (stop, kill, status…) are not limited, so a
 * limited person can still stop their agent, and the worker's own submissions (sub-agents) never pass here.
 */
export class RateLimiter {
  constructor(
    private readonly redis: Redis,
    private readonly instance: string,
    readonly settings: RateLimitSettings,
    private readonly notices: NoticeThrottle,
    private readonly clock: () => number = Date.now,
  ) {}

  async admit(request: LimitRequest): Promise<LimitAdmission> {
    const { messagesPerMinute, conversationsPerHour } = this.settings;
    if (messagesPerMinute === 0 && conversationsPerHour === 0) return { allowed: true };
    const keys = limitKeys(this.instance);
    const person = `${request.platform}:${request.user}`;
    const now = this.clock();
    const conversation = request.conversation ?? '';
    const reply = await this.redis.eval(
      RATE_ADMIT,
      3,
      keys.messages(person),
      keys.conversations(person),
      // Without a conversation id there is nothing to look up: the mode below decides.
      request.conversation
        ? conversationKeys(this.instance, request.conversation).seq
        : keys.messages(person),
      now,
      MINUTE_MS,
      messagesPerMinute,
      request.messageId,
      HOUR_MS,
      conversationsPerHour,
      conversation || request.messageId,
      request.startsConversation ? 'new' : request.conversation ? 'check' : 'old',
    );
    const admission = admissionOf(reply, this.settings, now);
    if (admission.allowed) return admission;
    const tell = await this.notices.first(keys.noticed(person, admission.limit), admission.retryAfterSeconds);
    return { ...admission, tell };
  }

  /** Takes a slot for a web event stream, renewed until `close`; or says which cap is reached. */
  async openStream(conversation: ConversationId): Promise<StreamSlot | StreamRefusal> {
    const keys = limitKeys(this.instance);
    const streamKeys = [keys.streams(conversation), keys.allStreams] as const;
    const id = `${conversation}#${randomUUID()}`;
    const { streamsPerConversation, streamsTotal } = this.settings;
    if (streamsPerConversation === 0 && streamsTotal === 0) return { allowed: true, close: async () => {} };
    const reply = await this.redis.eval(
      STREAM_OPEN,
      2,
      ...streamKeys,
      this.clock(),
      STREAM_SLOT_TTL_MS,
      id,
      streamsPerConversation,
      streamsTotal,
    );
    const refusal = streamRefusalOf(reply, this.settings);
    if (refusal) return refusal;
    const renew = setInterval(() => {
      this.redis
        .eval(STREAM_RENEW, 2, ...streamKeys, this.clock() + STREAM_SLOT_TTL_MS, STREAM_SLOT_TTL_MS, id)
        .catch(() => undefined); // a missed renewal only frees the slot early
    }, STREAM_SLOT_TTL_MS / 3);
    renew.unref();
    return {
      allowed: true,
      close: async () => {
        clearInterval(renew);
        await Promise.all(streamKeys.map((key) => this.redis.zrem(key, id))).catch(() => undefined);
      },
    };
  }
}
