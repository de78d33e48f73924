import { describe, expect, it } from 'vitest';
import { ConfigSchema } from '../../src/contracts/config/schema.js';
import {
  admissionOf,
  describeWait,
  HOUR_MS,
  limitNotice,
  MINUTE_MS,
  rateLimitSettings,
  retryAfterSeconds,
  streamRefusalOf,
  streamRefusalText,
} from '../../src/gateway/rate-limits.js';

const settings = rateLimitSettings(ConfigSchema.parse({}));
const now = 1_700_000_000_000;

describe('rate limit settings', () => {
  it('default to 20 messages a minute, 30 conversations an hour, 5 streams a conversation, 200 in all', () => {
    expect(settings).toEqual({
      messagesPerMinute: 20,
      conversationsPerHour: 30,
      streamsPerConversation: 5,
      streamsTotal: 200,
    });
  });
});

describe('admissionOf (what the Redis script answered)', () => {
  it('admits on [1]', () => {
    expect(admissionOf([1], settings, now)).toEqual({ allowed: true });
  });

  it('refuses a full minute with the wait until its oldest message leaves it', () => {
    expect(admissionOf([0, 1, now - 18_000], settings, now)).toEqual({
      allowed: false,
      limit: 'messages_per_minute',
      max: 20,
      retryAfterSeconds: 42,
    });
  });

  it('refuses a full hour of new conversations with that window', () => {
    expect(admissionOf([0, 2, now - HOUR_MS + 90_500], settings, now)).toEqual({
      allowed: false,
      limit: 'conversations_per_hour',
      max: 30,
      retryAfterSeconds: 91,
    });
  });

  it('waits the whole window when the time is unreadable, and never less than a second', () => {
    expect(admissionOf([0, 1], settings, now)).toMatchObject({ retryAfterSeconds: 60 });
    expect(admissionOf('junk', settings, now)).toMatchObject({ allowed: false, retryAfterSeconds: 3600 });
    expect(retryAfterSeconds(now - MINUTE_MS, MINUTE_MS, now)).toBe(1);
    expect(retryAfterSeconds(now - 59_001, MINUTE_MS, now)).toBe(1);
  });
});

describe('the notice in the channel', () => {
  it('says what was refused, the limit, and when to try again', () => {
    const text = limitNotice({
      allowed: false,
      limit: 'messages_per_minute',
      max: 20,
      retryAfterSeconds: 42,
    });
    expect(text).toContain('20 a minute');
    expect(text).toContain('42 seconds');
    expect(text).toContain('stop your agent');
    const hourly = limitNotice({
      allowed: false,
      limit: 'conversations_per_hour',
      max: 30,
      retryAfterSeconds: 600,
    });
    expect(hourly).toContain('30 conversations');
    expect(hourly).toContain('10 minutes');
  });

  it('reads waits in seconds, then whole minutes rounded up', () => {
    expect([1, 59, 60, 61, 3600].map(describeWait)).toEqual([
      '1 second',
      '59 seconds',
      '1 minute',
      '2 minutes',
      '60 minutes',
    ]);
  });
});

describe('event stream caps', () => {
  it('reads 0 as taken, 1 and 2 as which cap is reached', () => {
    expect(streamRefusalOf(0, settings)).toBeUndefined();
    expect(streamRefusalOf(1, settings)).toEqual({ allowed: false, cap: 'per_conversation', max: 5 });
    expect(streamRefusalOf(2, settings)).toEqual({ allowed: false, cap: 'total', max: 200 });
    expect(streamRefusalText({ allowed: false, cap: 'per_conversation', max: 5 })).toContain('at most 5');
  });
});
