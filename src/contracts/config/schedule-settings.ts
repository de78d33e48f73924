import { z } from 'zod';
import { int } from './setting-fields.js';

/** The scheduled-task settings, spread into the schema (schema.ts) in this order: the docs' order. */
export const SCHEDULE_SETTINGS = {
  SANDBOT_TIMEZONE: z
    .string()
    .min(1)
    .default('UTC')
    .refine(isTimeZone, 'an IANA time zone such as "UTC" or "Europe/Berlin"')
    .describe(
      'Time zone schedules are read in ("every weekday at 9", cron patterns); a schedule may name its own.',
    ),
  SANDBOT_SCHEDULE_MIN_SECONDS: int(1, 86_400)
    .default(60)
    .describe('Shortest interval a recurring schedule may have; shorter ones are refused.'),
  SANDBOT_SCHEDULE_MAX_FAILURES: int(1, 1000)
    .default(3)
    .describe('Runs of a schedule that fail in a row before it is paused (its owner is told).'),
  SANDBOT_SCHEDULE_CATCH_UP: z
    .enum(['true', 'false'])
    .default('true')
    .transform((v) => v === 'true')
    .describe(
      'An occurrence missed while sandbot was down runs once when it is back (false: it is skipped). Never once per missed interval.',
    ),
  SANDBOT_SCHEDULES_PER_USER: int(1, 10_000)
    .default(20)
    .describe('Schedules one person may have (paused ones count).'),
  SANDBOT_SCHEDULES_PER_CHANNEL: int(1, 100_000)
    .default(50)
    .describe('Schedules one channel (or web conversation) may have (paused ones count).'),
};

/** Whether the runtime knows this IANA time zone name. */
export function isTimeZone(name: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: name });
    return true;
  } catch {
    return false;
  }
}
