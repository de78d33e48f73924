import { describe, expect, it } from 'vitest';
import { webConversationId } from '../../src/contracts/conversation/id.js';
import {
  checkWhen,
  everySeconds,
  nextRun,
  type ScheduleRecord,
  scheduleView,
} from '../../src/contracts/schedules/schedule.js';
import {
  occurrenceOfJobId,
  runConversation,
  scheduledMessage,
  scheduledNotice,
  shouldRun,
} from '../../src/contracts/schedules/schedule-run.js';
import { mayManage, newScheduleId } from '../../src/shared/schedules/schedules.js';

const settings = { minSeconds: 60, timezone: 'UTC' };
const now = new Date('2030-01-07T08:00:00Z'); // a Monday

const record: ScheduleRecord = {
  id: 's-abcdefghij',
  conversation: webConversationId('team'),
  newThread: false,
  owner: { platform: 'web', id: 'ann', name: 'Ann' },
  route: {},
  text: 'summarise failed CI runs',
  when: { kind: 'every', every: '15m', ms: 900_000 },
  createdAt: now.toISOString(),
  createdBy: 'user:web:ann',
};

describe('reading when a schedule runs', () => {
  it('reads intervals in seconds, minutes, hours and days', () => {
    expect(everySeconds('90s')).toBe(90);
    expect(everySeconds('15m')).toBe(900);
    expect(everySeconds('2h')).toBe(7200);
    expect(everySeconds('1d')).toBe(86_400);
    expect(everySeconds('2 hours')).toBeUndefined();
    expect(everySeconds('-5m')).toBeUndefined();
  });

  it('takes exactly one of cron, every and at', () => {
    expect(checkWhen({}, settings, now)).toMatchObject({
      ok: false,
      error: expect.stringMatching(/exactly one/),
    });
    expect(checkWhen({ cron: '0 9 * * *', every: '1h' }, settings, now)).toMatchObject({ ok: false });
    expect(checkWhen({ every: '2h' }, settings, now)).toEqual({
      ok: true,
      when: { kind: 'every', every: '2h', ms: 7_200_000 },
    });
  });

  it('refuses intervals under the minimum, cron patterns too', () => {
    expect(checkWhen({ every: '30s' }, settings, now)).toEqual({
      ok: false,
      error: 'every: 30s is shorter than the minimum of 60s (SANDBOT_SCHEDULE_MIN_SECONDS)',
    });
    expect(checkWhen({ every: '60s' }, settings, now).ok).toBe(true);
    expect(checkWhen({ cron: '* * * * *' }, { ...settings, minSeconds: 120 }, now)).toMatchObject({
      ok: false,
      error: expect.stringMatching(/more often than the minimum of 120s/),
    });
    expect(checkWhen({ cron: '0 9 * * 1-5' }, settings, now)).toEqual({
      ok: true,
      when: { kind: 'cron', cron: '0 9 * * 1-5', tz: 'UTC' },
    });
  });

  it('names what is wrong with a pattern or a time', () => {
    expect(checkWhen({ cron: 'every day' }, settings, now)).toMatchObject({
      error: expect.stringMatching(/five fields/),
    });
    expect(checkWhen({ cron: '99 9 * * *' }, settings, now)).toMatchObject({
      error: expect.stringMatching(/not a cron pattern/),
    });
    expect(checkWhen({ at: 'tomorrow' }, settings, now)).toMatchObject({
      error: expect.stringMatching(/not an ISO time/),
    });
    expect(checkWhen({ at: '2029-01-01T00:00:00Z' }, settings, now)).toMatchObject({
      error: expect.stringMatching(/in the past/),
    });
  });

  it('reads a cron pattern in its time zone, the setting’s unless the schedule names one', () => {
    const berlin = checkWhen({ cron: '0 9 * * 1-5', tz: 'Europe/Berlin' }, settings, now);
    expect(berlin).toMatchObject({ ok: true, when: { tz: 'Europe/Berlin' } });
    if (!berlin.ok) return;
    // 09:00 in Berlin in January is 08:00 UTC: Monday's is now, so the next is Tuesday's.
    expect(nextRun(berlin.when, now, now)?.toISOString()).toBe('2030-01-08T08:00:00.000Z');
    const utc = checkWhen({ cron: '0 9 * * 1-5' }, settings, now);
    if (utc.ok) expect(nextRun(utc.when, now, now)?.toISOString()).toBe('2030-01-07T09:00:00.000Z');
  });
});

describe('the next run', () => {
  it('of an interval is one interval after creation, then on that grid', () => {
    const when = { kind: 'every' as const, every: '15m', ms: 900_000 };
    expect(nextRun(when, now, now)?.toISOString()).toBe('2030-01-07T08:15:00.000Z');
    expect(nextRun(when, now, new Date('2030-01-07T08:20:00Z'))?.toISOString()).toBe(
      '2030-01-07T08:30:00.000Z',
    );
    expect(nextRun(when, now, new Date('2030-01-07T08:30:00Z'))?.toISOString()).toBe(
      '2030-01-07T08:45:00.000Z',
    );
  });

  it('of a one-off is its time while ahead, then none', () => {
    const when = { kind: 'at' as const, at: '2030-01-07T10:00:00.000Z' };
    expect(nextRun(when, now, now)?.toISOString()).toBe(when.at);
    expect(nextRun(when, now, new Date('2030-01-07T10:00:01Z'))).toBeUndefined();
  });
});

describe('a run', () => {
  it('is a message from the owner with an id fixed by schedule and occurrence', () => {
    const occurrence = Date.parse('2030-01-07T08:15:00Z');
    const message = scheduledMessage(record, occurrence, now);
    expect(message).toEqual({
      id: `sched-s-abcdefghij-${occurrence}`,
      conversation: 'web:team',
      platform: 'web',
      user: { id: 'ann', name: 'Ann' },
      text: 'summarise failed CI runs',
      receivedAt: now.toISOString(),
      route: {},
      files: [],
      schedule: { id: 's-abcdefghij', occurrence },
    });
    expect(scheduledMessage(record, occurrence, new Date()).id).toBe(message.id);
    expect(scheduledMessage(record, occurrence + 900_000).id).not.toBe(message.id);
  });

  it('goes to a fresh conversation per run when asked', () => {
    expect(runConversation(record, 1000)).toBe('web:team');
    const fresh = { ...record, newThread: true };
    expect(runConversation(fresh, 1000)).toBe('web:team-rs');
    expect(runConversation(fresh, 2000)).not.toBe(runConversation(fresh, 1000));
  });

  it('knows its occurrence from the scheduler job id', () => {
    expect(occurrenceOfJobId('repeat:s-abcdefghij:1894003200000')).toBe(1_894_003_200_000);
    expect(occurrenceOfJobId('at-s-abcdefghij')).toBeUndefined();
    expect(occurrenceOfJobId(undefined)).toBeUndefined();
  });

  it('late runs anyway with catch-up on; without it, only when late by less than an interval', () => {
    const every = { kind: 'every' as const, every: '15m', ms: 900_000 };
    const cron = { kind: 'cron' as const, cron: '0 9 * * *', tz: 'UTC' };
    const hourLate = [0, 3_600_000] as const;
    expect(shouldRun(...hourLate, true, every)).toBe(true);
    expect(shouldRun(...hourLate, false, every)).toBe(false);
    expect(shouldRun(0, 60_000, false, every)).toBe(true);
    expect(shouldRun(0, 60_000, false, cron)).toBe(true);
    expect(shouldRun(0, 180_000, false, cron)).toBe(false);
  });

  it('is marked as scheduled', () => {
    expect(scheduledNotice('check the deploy\nand more')).toBe('⏰ scheduled task: check the deploy');
  });
});

describe('managing', () => {
  it('is for the owner or an admin', () => {
    expect(mayManage(record, 'web:ann', false)).toBe(true);
    expect(mayManage(record, 'web:bob', false)).toBe(false);
    expect(mayManage(record, 'web:bob', true)).toBe(true);
    expect(mayManage(record, 'slack:ann', false)).toBe(false);
  });

  it('shows a schedule as the API lists it', () => {
    const next = new Date('2030-01-07T08:15:00Z');
    expect(scheduleView({ ...record, paused: false, failures: 0 }, next)).toEqual({
      id: 's-abcdefghij',
      conversation: 'team',
      text: 'summarise failed CI runs',
      every: '15m',
      newThread: false,
      next: '2030-01-07T08:15:00.000Z',
      last: null,
      paused: false,
    });
    expect(newScheduleId()).toMatch(/^s-[a-z0-9]{10}$/);
  });
});
