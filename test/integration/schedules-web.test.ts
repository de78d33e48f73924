import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { webConversationId } from '../../src/contracts/conversation/id.js';
import { SCHEDULED_MARK } from '../../src/contracts/schedules/schedule-run.js';
import { Quarantine } from '../../src/shared/stores/quarantine.js';
import { REDIS_URL, testInstance } from '../../testkit/redis.js';
import { api, createSchedule, listSchedules, sleep } from '../helpers/schedules.js';
import { openSse, type SseClient } from '../helpers/sse.js';
import { type ScriptedStack, startScriptedStack, testConfig } from '../helpers/stack.js';

/**
 * Schedules through the web API, on real Redis, a real worker and the real engine (only the model is
 * scripted): validation in words, a one-off that runs once, an interval paused, resumed and deleted.
 */

const config = testConfig(testInstance('sched-web'), {
  SANDBOT_SCHEDULE_MIN_SECONDS: '2',
  SANDBOT_SCHEDULES_PER_USER: '3',
  SANDBOT_SCHEDULES_PER_CHANNEL: '4',
  SANDBOT_SCHEDULE_MAX_FAILURES: '2',
});
let stack: ScriptedStack;

beforeAll(async () => {
  stack = await startScriptedStack(config, (request) => {
    const last = request.messages.at(-1)?.content ?? '';
    return last.includes('FAIL') ? { status: 500, error: 'the model broke' } : { reply: `did: ${last}` };
  });
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

const replies = (sse: SseClient) => sse.events.filter((e) => e.type === 'reply');

describe('the schedules web API', () => {
  it('refuses what it cannot run, in words', async () => {
    const base = { conversation: 'refusals', user: 'ann', text: 'check the deploy' };
    const tooOften = await api(stack.url, 'POST', '/api/schedules', { ...base, every: '1s' });
    expect(tooOften.status).toBe(400);
    expect(tooOften.body.error).toMatch(/shorter than the minimum of 2s.*SANDBOT_SCHEDULE_MIN_SECONDS/);
    const cronTooOften = await api(stack.url, 'POST', '/api/schedules', { ...base, cron: '* * * * * *' });
    expect(cronTooOften.status).toBe(400);
    expect(cronTooOften.body.error).toMatch(/five fields/);
    const none = await api(stack.url, 'POST', '/api/schedules', base);
    expect(none.body.error).toMatch(/exactly one of "cron".*"every".*"at"/);
    const past = await api(stack.url, 'POST', '/api/schedules', { ...base, at: '2001-01-01T00:00:00Z' });
    expect(past.body.error).toMatch(/in the past/);
    const zone = await api(stack.url, 'POST', '/api/schedules', {
      ...base,
      cron: '0 9 * * 1-5',
      tz: 'Mars/Base',
    });
    expect(zone.body.error).toMatch(/tz: must be an IANA time zone/);
    expect(await listSchedules(stack.url, 'refusals')).toEqual([]);
    expect((await api(stack.url, 'DELETE', '/api/schedules/s-0000000000')).status).toBe(404);
    expect(await api(stack.url, 'POST', '/api/schedules/not-an-id/pause')).toMatchObject({
      status: 404,
      body: { error: 'no schedule not-an-id' },
    });
    expect(await api(stack.url, 'GET', '/api/schedules')).toMatchObject({
      status: 400,
      body: { error: expect.stringMatching(/^conversation: give the conversation as posted/) },
    });
    expect(
      await api(stack.url, 'POST', '/api/schedules', { ...base, every: '5m', color: 'red' }),
    ).toMatchObject({
      status: 400,
      body: { error: expect.stringMatching(/unknown field\(s\) "color"/) },
    });
  });

  it('answers a cron schedule with its next run in its time zone', async () => {
    const created = await api(stack.url, 'POST', '/api/schedules', {
      conversation: 'crons',
      user: 'ann',
      text: 'summarise failed CI runs',
      cron: '0 9 * * 1-5',
      tz: 'Europe/Berlin',
    });
    expect(created.status).toBe(201);
    const next = new Date(String(created.body.next));
    // 09:00 in Berlin is 07:00 or 08:00 UTC, on a weekday.
    expect([7, 8]).toContain(next.getUTCHours());
    expect([1, 2, 3, 4, 5]).toContain(next.getUTCDay());
    const [listed] = await listSchedules(stack.url, 'crons');
    expect(listed).toMatchObject({ id: created.body.id, cron: '0 9 * * 1-5', paused: false, last: null });
    expect(listed?.next).toBe(created.body.next);
  });

  it('runs a one-off `at` once, marked as scheduled before its reply', { timeout: 90_000 }, async () => {
    const sse = await openSse(`${stack.url}/api/conversations/once/events`);
    try {
      const at = new Date(Date.now() + 2000).toISOString();
      const id = await createSchedule(stack.url, { conversation: 'once', user: 'ann', text: 'say once', at });
      await sse.waitFor((e) => e.type === 'reply', 60_000);
      const marker = sse.events.findIndex((e) => e.type === 'progress' && e.text.startsWith(SCHEDULED_MARK));
      const reply = sse.events.findIndex((e) => e.type === 'reply');
      expect(marker).toBeGreaterThanOrEqual(0);
      expect(marker).toBeLessThan(reply);
      expect(sse.events[marker]).toMatchObject({ text: `${SCHEDULED_MARK} say once` });
      expect(replies(sse)[0]).toMatchObject({ text: expect.stringContaining('say once') });
      await expect
        .poll(async () => (await listSchedules(stack.url, 'once'))[0]?.last?.outcome, { timeout: 20_000 })
        .toBe('replied');
      const [listed] = await listSchedules(stack.url, 'once');
      expect(listed).toMatchObject({ id, at, next: null, paused: false });
      await sleep(4000);
      expect(replies(sse)).toHaveLength(1);
    } finally {
      sse.close();
    }
  });

  it('stops an interval while paused, runs it again when resumed, and never after delete', {
    timeout: 120_000,
  }, async () => {
    const sse = await openSse(`${stack.url}/api/conversations/interval/events`);
    try {
      const id = await createSchedule(stack.url, {
        conversation: 'interval',
        user: 'ann',
        text: 'tick',
        every: '3s',
      });
      await sse.waitFor((e) => e.type === 'reply', 60_000);
      const paused = await api(stack.url, 'POST', `/api/schedules/${id}/pause`);
      expect(paused).toMatchObject({ status: 200, body: { id, paused: true, next: null } });
      // A run already under way when paused may still answer; after that, nothing for 3 intervals.
      await sleep(3000);
      const whilePaused = replies(sse).length;
      await sleep(9000);
      expect(replies(sse)).toHaveLength(whilePaused);

      const resumed = await api(stack.url, 'POST', `/api/schedules/${id}/resume`);
      expect(resumed).toMatchObject({ status: 200, body: { id, paused: false } });
      expect(resumed.body.next).not.toBeNull();
      await expect.poll(() => replies(sse).length, { timeout: 30_000 }).toBeGreaterThan(whilePaused);

      expect((await api(stack.url, 'DELETE', `/api/schedules/${id}`)).status).toBe(204);
      expect(await listSchedules(stack.url, 'interval')).toEqual([]);
      await sleep(3000);
      const afterDelete = replies(sse).length;
      await sleep(9000);
      expect(replies(sse)).toHaveLength(afterDelete);
      // One reply per occurrence: no event id twice.
      const ids = replies(sse).map((e) => e.id);
      expect(new Set(ids).size).toBe(ids.length);
    } finally {
      sse.close();
    }
  });

  it('caps schedules per person and per channel', async () => {
    const make = (conversation: string, user: string) =>
      api(stack.url, 'POST', '/api/schedules', { conversation, user, text: 'later', cron: '0 9 * * 1-5' });
    for (const n of [1, 2, 3]) expect((await make(`caps-${n}`, 'cap')).status).toBe(201);
    const fourth = await make('caps-4', 'cap');
    expect(fourth).toMatchObject({
      status: 409,
      body: { error: expect.stringMatching(/you have 3 schedules already \(SANDBOT_SCHEDULES_PER_USER\)/) },
    });
    for (const user of ['u1', 'u2', 'u3', 'u4']) expect((await make('busy', user)).status).toBe(201);
    expect(await make('busy', 'u5')).toMatchObject({
      status: 409,
      body: {
        error: expect.stringMatching(
          /this channel has 4 schedules already \(SANDBOT_SCHEDULES_PER_CHANNEL\)/,
        ),
      },
    });
    // A deleted one frees its place.
    const [first] = await listSchedules(stack.url, 'caps-1');
    expect((await api(stack.url, 'DELETE', `/api/schedules/${first?.id}`)).status).toBe(204);
    expect((await make('caps-4', 'cap')).status).toBe(201);
  });

  it('pauses a schedule whose runs keep failing, and tells its owner', { timeout: 90_000 }, async () => {
    const sse = await openSse(`${stack.url}/api/conversations/failing/events`);
    try {
      const id = await createSchedule(stack.url, {
        conversation: 'failing',
        user: 'ann',
        text: 'FAIL now',
        every: '2s',
      });
      const notice = await sse.waitFor(
        (e) => e.type === 'error' && e.message.startsWith(`Schedule ${id} is paused`),
        60_000,
      );
      expect(notice).toMatchObject({
        message: `Schedule ${id} is paused: its last 2 runs failed. Resume it when the cause is fixed.`,
      });
      const [listed] = await listSchedules(stack.url, 'failing');
      expect(listed).toMatchObject({
        paused: true,
        pausedReason: '2 runs failed in a row',
        next: null,
        last: { outcome: 'failed' },
      });
    } finally {
      sse.close();
    }
  });

  it('pauses the schedules of a quarantined conversation', { timeout: 90_000 }, async () => {
    const sse = await openSse(`${stack.url}/api/conversations/quarantined/events`);
    const redis = new Redis(REDIS_URL);
    try {
      const id = await createSchedule(stack.url, {
        conversation: 'quarantined',
        user: 'quinn',
        text: 'tick',
        every: '2s',
      });
      await sse.waitFor((e) => e.type === 'reply', 60_000);
      // As an admin's kill or a tripwire leaves it.
      await new Quarantine(redis, config.SANDBOT_INSTANCE).put(
        webConversationId('quarantined'),
        'test kill',
        'admin:test',
      );
      await expect
        .poll(async () => (await listSchedules(stack.url, 'quarantined'))[0]?.paused, { timeout: 20_000 })
        .toBe(true);
      const [listed] = await listSchedules(stack.url, 'quarantined');
      expect(listed).toMatchObject({ id, pausedReason: 'its conversation is quarantined (test kill)' });
    } finally {
      sse.close();
      redis.disconnect();
    }
  });

  it('runs each occurrence in a fresh conversation of its own with "conversation": "new"', {
    timeout: 90_000,
  }, async () => {
    const created = await api(stack.url, 'POST', '/api/schedules', {
      conversation: 'new',
      user: 'nina',
      text: 'fresh',
      every: '2s',
    });
    expect(created.status).toBe(201);
    const base = String(created.body.conversation);
    expect(base).toMatch(/^new-[0-9a-f]{8}$/);
    await expect
      .poll(async () => (await listSchedules(stack.url, base))[0]?.last?.outcome, { timeout: 60_000 })
      .toBe('replied');
    const [listed] = await listSchedules(stack.url, base);
    expect(listed).toMatchObject({ newThread: true });
    const occurrence = Date.parse(listed?.last?.at ?? '');
    const sse = await openSse(`${stack.url}/api/conversations/${base}-${occurrence.toString(36)}/events`, {
      'last-event-id': '0-0',
    });
    try {
      const reply = await sse.waitFor((e) => e.type === 'reply', 20_000);
      expect(reply).toMatchObject({ text: expect.stringContaining('fresh') });
    } finally {
      sse.close();
      await api(stack.url, 'DELETE', `/api/schedules/${listed?.id}`);
    }
  });
});
