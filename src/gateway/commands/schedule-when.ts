import { isTimeZone } from '../../contracts/config/schedule-settings.js';
import type { WhenInput } from '../../contracts/schedules/schedule.js';

/**
 * Reads when a schedule runs from the start of a chat command's text, and where the task begins:
 *   cron 0 9 * * 1-5 <task>          every 15m <task> / every 2 hours <task>
 *   at 2030-01-31T09:00:00Z <task>   every weekday at 9:00 <task> / every monday at 14:30 <task>
 *   every day at 9 <task>            every hour <task>
 *   in 2 hours <task> / tomorrow at 9 <task>   (plain words for one run, read by chrono-node)
 * A cron-like one may name its time zone after the time: `every weekday at 9:00 Europe/Berlin <task>`.
 * The time zone and "now" are given. chrono-node loads on first use of plain words (≈85 ms, kept
 * off the gateway's start).
 */
export type SplitWhen = { ok: true; when: WhenInput; task: string } | { ok: false; error: string };

export const WHEN_EXAMPLES =
  '`every 15m`, `every weekday at 9:00`, `every monday at 14:30`, `cron 0 9 * * 1-5`, `at 2030-01-31T09:00:00Z`, `in 2 hours`, `tomorrow at 9`';

const UNITS: Record<string, string> = { second: 's', minute: 'm', hour: 'h', day: 'd' };
const DAYS: Record<string, string> = {
  day: '*',
  weekday: '1-5',
  sunday: '0',
  monday: '1',
  tuesday: '2',
  wednesday: '3',
  thursday: '4',
  friday: '5',
  saturday: '6',
};

type Rule = (text: string) => { when: WhenInput; task: string } | undefined;

const RULES: Rule[] = [
  (text) => {
    const m = /^cron\s+((?:\S+\s+){4}\S+)(?:\s+([\s\S]*))?$/i.exec(text);
    return m ? { when: { cron: m[1] ?? '' }, task: m[2] ?? '' } : undefined;
  },
  (text) => {
    const m = /^every\s+(\d+\s*[smhd])\b\s*([\s\S]*)$/i.exec(text);
    return m ? { when: { every: (m[1] ?? '').replace(/\s+/g, '') }, task: m[2] ?? '' } : undefined;
  },
  (text) => {
    const m = /^every\s+(\d+)\s+(second|minute|hour|day)s?\b\s*([\s\S]*)$/i.exec(text);
    const unit = UNITS[(m?.[2] ?? '').toLowerCase()];
    return m && unit ? { when: { every: `${m[1]}${unit}` }, task: m[3] ?? '' } : undefined;
  },
  (text) => {
    const m =
      /^every\s+(day|weekday|sunday|monday|tuesday|wednesday|thursday|friday|saturday)\s+at\s+(\d{1,2})(?::(\d{2}))?\s*(am|pm)?\b\s*([\s\S]*)$/i.exec(
        text,
      );
    if (!m) return undefined;
    const hour = to24(Number(m[2]), m[4]?.toLowerCase());
    const minute = Number(m[3] ?? '0');
    if (hour === undefined || minute > 59) return undefined;
    const days = DAYS[(m[1] ?? '').toLowerCase()] ?? '*';
    return { when: { cron: `${minute} ${hour} * * ${days}` }, task: m[5] ?? '' };
  },
  (text) => {
    const m = /^every\s+hour\b\s*([\s\S]*)$/i.exec(text);
    return m ? { when: { cron: '0 * * * *' }, task: m[1] ?? '' } : undefined;
  },
  (text) => {
    const m = /^at\s+(\d{4}-\d{2}-\d{2}T\S+)\s*([\s\S]*)$/i.exec(text);
    return m ? { when: { at: m[1] ?? '' }, task: m[2] ?? '' } : undefined;
  },
];

function to24(hour: number, meridiem: string | undefined): number | undefined {
  if (meridiem === undefined) return hour <= 23 ? hour : undefined;
  if (hour < 1 || hour > 12) return undefined;
  return (hour % 12) + (meridiem === 'pm' ? 12 : 0);
}

/** The offset of a time zone from UTC at an instant, in minutes (what chrono-node takes). */
export function zoneOffsetMinutes(timeZone: string, at: Date): number {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone,
    hourCycle: 'h23',
    year: 'numeric',
    month: 'numeric',
    day: 'numeric',
    hour: 'numeric',
    minute: 'numeric',
    second: 'numeric',
  }).formatToParts(at);
  const get = (type: string) => Number(parts.find((p) => p.type === type)?.value ?? 0);
  const local = Date.UTC(
    get('year'),
    get('month') - 1,
    get('day'),
    get('hour'),
    get('minute'),
    get('second'),
  );
  return Math.round((local - Math.floor(at.getTime() / 1000) * 1000) / 60_000);
}

export async function splitWhen(input: string, now: Date, timeZone: string): Promise<SplitWhen> {
  const text = input.trim();
  for (const rule of RULES) {
    const found = rule(text);
    if (found) return found.when.cron ? withZone(found.when, found.task) : withTask(found.when, found.task);
  }
  // One run, in plain words at the start ("in 2 hours …", "tomorrow at 9 …").
  const chrono = await import('chrono-node');
  const [first] = chrono.parse(
    text,
    { instant: now, timezone: zoneOffsetMinutes(timeZone, now) },
    { forwardDate: true },
  );
  if (first && first.index === 0) {
    return withTask({ at: first.date().toISOString() }, text.slice(first.text.length));
  }
  return { ok: false, error: `I could not read when to run it. Start with one of ${WHEN_EXAMPLES}.` };
}

/** A time zone named first in the rest (`Europe/Berlin`, `UTC`) belongs to the cron pattern. */
function withZone(when: WhenInput, rest: string): SplitWhen {
  const match = /^\s*(UTC|[A-Za-z_]+\/[A-Za-z_+\-/]+)(?=\s|$)/.exec(rest);
  if (!match?.[1] || !isTimeZone(match[1])) return withTask(when, rest);
  return withTask({ ...when, tz: match[1] }, rest.slice(match[0].length));
}

function withTask(when: WhenInput, task: string): SplitWhen {
  const trimmed = task.replace(/^[\s:,;-]+/, '').trim();
  return { ok: true, when, task: trimmed };
}
