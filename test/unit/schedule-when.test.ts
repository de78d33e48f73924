import { describe, expect, it } from 'vitest';
import { splitWhen, zoneOffsetMinutes } from '../../src/gateway/commands/schedule-when.js';

const now = new Date('2030-01-07T08:00:00Z'); // a Monday, 09:00 in Berlin

describe('reading when from a chat command', () => {
  it.each([
    ['every 15m tick', { every: '15m' }, 'tick'],
    ['every 90s tick', { every: '90s' }, 'tick'],
    ['every 2 hours check the deploy', { every: '2h' }, 'check the deploy'],
    ['every weekday at 9:00 summarise failed CI runs', { cron: '0 9 * * 1-5' }, 'summarise failed CI runs'],
    ['every day at 7 water the plants', { cron: '0 7 * * *' }, 'water the plants'],
    ['every monday at 2:30pm: plan the week', { cron: '30 14 * * 1' }, 'plan the week'],
    ['every hour ping', { cron: '0 * * * *' }, 'ping'],
    ['cron 0 9 * * 1-5 standup notes', { cron: '0 9 * * 1-5' }, 'standup notes'],
    ['at 2030-01-31T09:00:00Z release', { at: '2030-01-31T09:00:00Z' }, 'release'],
  ])('%s', async (text, when, task) => {
    expect(await splitWhen(text, now, 'UTC')).toEqual({ ok: true, when, task });
  });

  it('takes a time zone named after a recurring time', async () => {
    expect(await splitWhen('every weekday at 9:00 Europe/Berlin summarise', now, 'UTC')).toEqual({
      ok: true,
      when: { cron: '0 9 * * 1-5', tz: 'Europe/Berlin' },
      task: 'summarise',
    });
    expect(await splitWhen('cron 0 9 * * * UTC standup', now, 'Europe/Berlin')).toEqual({
      ok: true,
      when: { cron: '0 9 * * *', tz: 'UTC' },
      task: 'standup',
    });
    // Not a zone: part of the task.
    expect(await splitWhen('every day at 7 water/feed the plants', now, 'UTC')).toMatchObject({
      when: { cron: '0 7 * * *' },
      task: 'water/feed the plants',
    });
  });

  it('reads plain words for one run, in the time zone', async () => {
    expect(await splitWhen('in 2 hours check whether the deploy finished', now, 'UTC')).toEqual({
      ok: true,
      when: { at: '2030-01-07T10:00:00.000Z' },
      task: 'check whether the deploy finished',
    });
    // 9 tomorrow in Berlin (UTC+1 in January) is 08:00 UTC.
    expect(await splitWhen('tomorrow at 9 do it', now, 'Europe/Berlin')).toEqual({
      ok: true,
      when: { at: '2030-01-08T08:00:00.000Z' },
      task: 'do it',
    });
  });

  it('says what it can read when it cannot', async () => {
    expect(await splitWhen('whenever you like', now, 'UTC')).toMatchObject({
      ok: false,
      error: expect.stringMatching(/could not read when.*`every 15m`.*`in 2 hours`/),
    });
    expect(await splitWhen('every day at 25 x', now, 'UTC')).toMatchObject({ ok: false });
  });

  it('knows a time zone’s offset at an instant', () => {
    expect(zoneOffsetMinutes('UTC', now)).toBe(0);
    expect(zoneOffsetMinutes('Europe/Berlin', now)).toBe(60);
    expect(zoneOffsetMinutes('Europe/Berlin', new Date('2030-07-01T12:00:00Z'))).toBe(120);
    expect(zoneOffsetMinutes('America/New_York', now)).toBe(-300);
  });
});
