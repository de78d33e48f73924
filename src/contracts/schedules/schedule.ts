import { CronExpressionParser } from 'cron-parser';
import { z } from 'zod';
import { AuditActor } from '../audit/events.js';
import { ConversationId } from '../conversation/id.js';
import { ReplyRoute } from '../protocol/inbound.js';

/**
 * A schedule: standing work an agent is handed ("every weekday at 9, summarise …"). Each occurrence is a
 * message from its owner into the conversation it was made in. The record is what was asked and does
 * not change; its state (paused, failures in a row, the last run) is kept beside it.
 */

export const ScheduleId = z
  .string()
  .regex(/^s-[a-z0-9]{10}$/, 'a schedule id looks like "s-" and 10 letters or digits');
export type ScheduleId = z.infer<typeof ScheduleId>;

/** When it runs: a cron pattern (in a time zone), a fixed interval, or once at a time. */
export const ScheduleWhen = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('cron'), cron: z.string().min(1).max(200), tz: z.string().min(1).max(64) }),
  z.object({ kind: z.literal('every'), every: z.string().max(20), ms: z.number().int().positive() }),
  z.object({ kind: z.literal('at'), at: z.iso.datetime() }),
]);
export type ScheduleWhen = z.infer<typeof ScheduleWhen>;

export const ScheduleOwner = z.object({
  platform: z.enum(['web', 'slack', 'discord']),
  id: z.string().min(1).max(128),
  name: z.string().max(128).optional(),
});
export type ScheduleOwner = z.infer<typeof ScheduleOwner>;

export const ScheduleRecord = z.object({
  id: ScheduleId,
  /** Where it was made; each run goes there, or (newThread) to a fresh conversation beside it. */
  conversation: ConversationId,
  newThread: z.boolean().default(false),
  owner: ScheduleOwner,
  /** Where the platform answers (the route of the message or command that made it). */
  route: ReplyRoute.default({}),
  text: z.string().min(1).max(100_000),
  when: ScheduleWhen,
  createdAt: z.iso.datetime(),
  createdBy: AuditActor,
});
export type ScheduleRecord = z.infer<typeof ScheduleRecord>;

export const RunOutcome = z.enum(['replied', 'failed', 'killed', 'stopped', 'skipped']);
export const LastRun = z.object({
  at: z.iso.datetime(),
  outcome: z.string().max(50),
  turnId: z.string().max(300).optional(),
});
export type LastRun = z.infer<typeof LastRun>;

/** What changes: kept in its own hash fields, so a worker's run and a user's pause never overwrite each other. */
export interface ScheduleState {
  paused: boolean;
  pausedReason?: string;
  failures: number;
  last?: LastRun;
}
export type Schedule = ScheduleRecord & ScheduleState;

// ── Reading `when` ──────────────────────────────────────────────────────────────────────────────────

const UNIT_SECONDS = { s: 1, m: 60, h: 3600, d: 86_400 } as const;

/** "90s", "15m", "2h", "1d" as seconds; undefined for anything else. */
export function everySeconds(text: string): number | undefined {
  const match = /^\s*(\d{1,7})\s*([smhd])\s*$/i.exec(text);
  if (!match) return undefined;
  const unit = (match[2] ?? 's').toLowerCase() as keyof typeof UNIT_SECONDS;
  return Number(match[1]) * UNIT_SECONDS[unit];
}

export interface WhenSettings {
  minSeconds: number;
  timezone: string;
}

export interface WhenInput {
  cron?: string | undefined;
  every?: string | undefined;
  at?: string | undefined;
  tz?: string | undefined;
}

export type WhenCheck = { ok: true; when: ScheduleWhen } | { ok: false; error: string };

/** Exactly one of cron, every and at, checked: a pattern that parses, no interval under the minimum, a future time. */
export function checkWhen(input: WhenInput, settings: WhenSettings, now: Date = new Date()): WhenCheck {
  const given = (['cron', 'every', 'at'] as const).filter((k) => input[k] !== undefined);
  if (given.length !== 1) {
    return {
      ok: false,
      error: 'give exactly one of "cron" (e.g. "0 9 * * 1-5"), "every" (e.g. "15m") or "at" (an ISO time)',
    };
  }
  if (input.cron !== undefined)
    return checkCron(input.cron, input.tz ?? settings.timezone, settings.minSeconds, now);
  if (input.every !== undefined) {
    const seconds = everySeconds(input.every);
    if (seconds === undefined)
      return {
        ok: false,
        error: `every: "${input.every}" is not an interval like "90s", "15m", "2h" or "1d"`,
      };
    if (seconds < settings.minSeconds) {
      return {
        ok: false,
        error: `every: ${seconds}s is shorter than the minimum of ${settings.minSeconds}s (SANDBOT_SCHEDULE_MIN_SECONDS)`,
      };
    }
    return { ok: true, when: { kind: 'every', every: input.every.trim(), ms: seconds * 1000 } };
  }
  const at = new Date(input.at ?? '');
  if (Number.isNaN(at.getTime()))
    return { ok: false, error: `at: "${input.at}" is not an ISO time like "2030-01-31T09:00:00Z"` };
  if (at.getTime() <= now.getTime()) return { ok: false, error: `at: ${at.toISOString()} is in the past` };
  return { ok: true, when: { kind: 'at', at: at.toISOString() } };
}

function checkCron(cron: string, tz: string, minSeconds: number, now: Date): WhenCheck {
  if (cron.trim().split(/\s+/).length !== 5) {
    return {
      ok: false,
      error: `cron: "${cron}" needs five fields: minute hour day-of-month month day-of-week`,
    };
  }
  try {
    const pattern = CronExpressionParser.parse(cron, { currentDate: now, tz });
    const first = pattern.next().getTime();
    const gaps: number[] = [];
    let previous = first;
    // The shortest gap among the next few runs (e.g. "*/1 * * * *" is a minute apart).
    for (let i = 0; i < 5; i++) {
      const next = pattern.next().getTime();
      gaps.push(next - previous);
      previous = next;
    }
    if (Math.min(...gaps) < minSeconds * 1000) {
      return {
        ok: false,
        error: `cron: "${cron}" runs more often than the minimum of ${minSeconds}s (SANDBOT_SCHEDULE_MIN_SECONDS)`,
      };
    }
  } catch (error) {
    return { ok: false, error: `cron: "${cron}" is not a cron pattern (${(error as Error).message})` };
  }
  return { ok: true, when: { kind: 'cron', cron: cron.trim().replace(/\s+/g, ' '), tz } };
}

/**
 * The next run after `from`: a cron's next match, an interval's next step counted from creation (the
 * first run is one interval after it), a one-off's time if still ahead.
 */
export function nextRun(when: ScheduleWhen, createdAt: Date, from: Date = new Date()): Date | undefined {
  if (when.kind === 'at') {
    const at = new Date(when.at);
    return at > from ? at : undefined;
  }
  if (when.kind === 'every') {
    const start = createdAt.getTime() + when.ms;
    if (from.getTime() < start) return new Date(start);
    return new Date(start + Math.ceil((from.getTime() - start + 1) / when.ms) * when.ms);
  }
  return CronExpressionParser.parse(when.cron, { currentDate: from, tz: when.tz }).next().toDate();
}

/** How a schedule shows its timing to people: "cron 0 9 * * 1-5 (UTC)", "every 15m", "at …". */
export function describeWhen(when: ScheduleWhen): string {
  if (when.kind === 'cron') return `cron ${when.cron} (${when.tz})`;
  if (when.kind === 'every') return `every ${when.every}`;
  return `at ${when.at}`;
}

/** A schedule as the web API and chat lists show it. */
export interface ScheduleView {
  id: string;
  /** As it was posted: a web chat's name, else the conversation id. */
  conversation: string;
  text: string;
  cron?: string;
  tz?: string;
  every?: string;
  at?: string;
  /** Each run in a fresh conversation of its own. */
  newThread: boolean;
  next: string | null;
  last: LastRun | null;
  paused: boolean;
  pausedReason?: string;
}

export function scheduleView(schedule: Schedule, next: Date | undefined): ScheduleView {
  const { when } = schedule;
  const timing =
    when.kind === 'cron'
      ? { cron: when.cron, tz: when.tz }
      : when.kind === 'every'
        ? { every: when.every }
        : { at: when.at };
  return {
    id: schedule.id,
    conversation: schedule.conversation.startsWith('web:')
      ? schedule.conversation.slice(4)
      : schedule.conversation,
    text: schedule.text,
    ...timing,
    newThread: schedule.newThread,
    next: next?.toISOString() ?? null,
    last: schedule.last ?? null,
    paused: schedule.paused,
    ...(schedule.pausedReason ? { pausedReason: schedule.pausedReason } : {}),
  };
}
