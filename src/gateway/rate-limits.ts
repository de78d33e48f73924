import type { Config } from '../contracts/config/schema.js';

/**
 * The decisions around the gateway's rate limits, pure: the settings, what Redis's answer means, and
 * what the person is told. The counting itself is atomic in Redis (RATE_ADMIT, STREAM_OPEN).
 */

export const MINUTE_MS = 60_000;
export const HOUR_MS = 3_600_000;

export interface RateLimitSettings {
  messagesPerMinute: number;
  conversationsPerHour: number;
  streamsPerConversation: number;
  streamsTotal: number;
}

export function rateLimitSettings(
  config: Pick<
    Config,
    | 'SANDBOT_USER_MESSAGES_PER_MINUTE'
    | 'SANDBOT_USER_CONVERSATIONS_PER_HOUR'
    | 'SANDBOT_EVENT_STREAMS_PER_CONVERSATION'
    | 'SANDBOT_EVENT_STREAMS_TOTAL'
  >,
): RateLimitSettings {
  return {
    messagesPerMinute: config.SANDBOT_USER_MESSAGES_PER_MINUTE,
    conversationsPerHour: config.SANDBOT_USER_CONVERSATIONS_PER_HOUR,
    streamsPerConversation: config.SANDBOT_EVENT_STREAMS_PER_CONVERSATION,
    streamsTotal: config.SANDBOT_EVENT_STREAMS_TOTAL,
  };
}

export type LimitName = 'messages_per_minute' | 'conversations_per_hour';

export type Admission =
  | { allowed: true }
  | { allowed: false; limit: LimitName; max: number; retryAfterSeconds: number };

/** Whole seconds until the oldest counted entry leaves its window (at least 1: "now" is not a wait). */
export function retryAfterSeconds(oldestMs: number, windowMs: number, now: number): number {
  return Math.max(1, Math.ceil((oldestMs + windowMs - now) / 1000));
}

/** What RATE_ADMIT's reply (`[1]`, or `[0, which, oldestMs]`) means. */
export function admissionOf(reply: unknown, settings: RateLimitSettings, now: number): Admission {
  const [admitted, which, oldest] = Array.isArray(reply) ? reply.map(Number) : [];
  if (admitted === 1) return { allowed: true };
  const messages = which === 1;
  const windowMs = messages ? MINUTE_MS : HOUR_MS;
  return {
    allowed: false,
    limit: messages ? 'messages_per_minute' : 'conversations_per_hour',
    max: messages ? settings.messagesPerMinute : settings.conversationsPerHour,
    // An unreadable time: wait the whole window rather than none.
    retryAfterSeconds: retryAfterSeconds(Number.isFinite(oldest) ? (oldest as number) : now, windowMs, now),
  };
}

/** How long a wait reads: "42 seconds", "1 minute", "17 minutes". */
export function describeWait(seconds: number): string {
  if (seconds < 60) return `${seconds} second${seconds === 1 ? '' : 's'}`;
  const minutes = Math.ceil(seconds / 60);
  return `${minutes} minute${minutes === 1 ? '' : 's'}`;
}

/** The answer in the person's channel: what was refused, why, and when they can go on. */
export function limitNotice(refusal: Extract<Admission, { allowed: false }>): string {
  const wait = describeWait(refusal.retryAfterSeconds);
  if (refusal.limit === 'messages_per_minute') {
    return `You are sending messages faster than I take them (${refusal.max} a minute): I did not take this one, nor will I take others for about ${wait}. Send it again then. You can still stop your agent meanwhile.`;
  }
  return `You have started ${refusal.max} conversations in the last hour, the most I take: I did not take this one. Continue an existing conversation, or try again in about ${wait}.`;
}

export type StreamRefusal = { allowed: false; cap: 'per_conversation' | 'total'; max: number };

/** What STREAM_OPEN's reply (0, 1 or 2) means. */
export function streamRefusalOf(reply: unknown, settings: RateLimitSettings): StreamRefusal | undefined {
  const code = Number(reply);
  if (code === 1) return { allowed: false, cap: 'per_conversation', max: settings.streamsPerConversation };
  if (code === 2) return { allowed: false, cap: 'total', max: settings.streamsTotal };
  return undefined;
}

/** A refused event stream's Retry-After: slots free when streams close, which has no fixed time. */
export const STREAM_RETRY_SECONDS = 30;

export function streamRefusalText(refusal: StreamRefusal): string {
  return refusal.cap === 'per_conversation'
    ? `too many open event streams for this conversation (at most ${refusal.max}): close one (another tab?) and try again`
    : `too many open event streams on this server (at most ${refusal.max}); try again shortly`;
}
