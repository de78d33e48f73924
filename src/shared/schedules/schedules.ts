import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { AuditActor } from '../../contracts/audit/events.js';
import type { Config } from '../../contracts/config/schema.js';
import type { ConversationId } from '../../contracts/conversation/id.js';
import type { ReplyRoute } from '../../contracts/protocol/inbound.js';
import { bullPrefix, SCHEDULE_QUEUE } from '../../contracts/redis/keys.js';
import {
  checkWhen,
  describeWhen,
  nextRun,
  type Schedule,
  ScheduleId,
  type ScheduleOwner,
  type ScheduleRecord,
  type WhenInput,
} from '../../contracts/schedules/schedule.js';
import type { AuditRecorder } from '../audit/audit-log.js';
import { Queue } from '../redis/bullmq.js';
import { personOf, ScheduleStore } from './schedule-store.js';

/** A job of the schedule queue: which schedule is due (the occurrence is in the job's id). */
export const ScheduleJob = z.object({ schedule: ScheduleId });
export type ScheduleJob = z.infer<typeof ScheduleJob>;

export type ScheduleSettings = Pick<
  Config,
  | 'SANDBOT_INSTANCE'
  | 'SANDBOT_TIMEZONE'
  | 'SANDBOT_SCHEDULE_MIN_SECONDS'
  | 'SANDBOT_SCHEDULES_PER_USER'
  | 'SANDBOT_SCHEDULES_PER_CHANNEL'
>;

export interface NewSchedule {
  conversation: ConversationId;
  newThread?: boolean;
  owner: ScheduleOwner;
  route?: ReplyRoute;
  text: string;
  when: WhenInput;
  actor: AuditActor;
}

export type Created =
  | { ok: true; schedule: Schedule; next?: Date }
  | { ok: false; status: 400 | 409; error: string };

/** An occurrence that could not be submitted (Redis away a moment) is tried again: its message id dedups. */
const JOB_OPTIONS = {
  removeOnComplete: { age: 86_400, count: 1000 },
  removeOnFail: { age: 7 * 86_400 },
  attempts: 5,
  backoff: { type: 'exponential', delay: 1000 },
};

/** A one-off's job id: fixed, so arming it twice queues it once. */
const atJobId = (id: string) => `at-${id}`;

/** New schedule ids: "s-" and 10 letters or digits. */
export function newScheduleId(): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  return `s-${[...randomBytes(10)].map((b) => alphabet[b % alphabet.length]).join('')}`;
}

/** Whether someone may pause, resume or delete a schedule: its owner, or an admin. */
export function mayManage(schedule: Pick<ScheduleRecord, 'owner'>, person: string, admin: boolean): boolean {
  return admin || personOf(schedule) === person;
}

/**
 * Making and managing schedules, for gateways (web API, chat commands) and workers alike: the record
 * in Redis (ScheduleStore) and, while a schedule is active, its BullMQ job scheduler, which puts one
 * job per occurrence on the schedule queue (ids `repeat:<schedule id>:<ms>`, so never two for one
 * occurrence, whichever process armed it). A one-off is one delayed job with a fixed id.
 */
export class Schedules {
  readonly store: ScheduleStore;
  readonly queue: Queue<ScheduleJob>;

  constructor(
    redis: Redis,
    private readonly settings: ScheduleSettings,
    private readonly audit?: AuditRecorder,
  ) {
    this.store = new ScheduleStore(redis, settings.SANDBOT_INSTANCE);
    this.queue = new Queue<ScheduleJob>(SCHEDULE_QUEUE, {
      connection: redis,
      prefix: bullPrefix(settings.SANDBOT_INSTANCE),
    });
  }

  async create(input: NewSchedule, now: Date = new Date()): Promise<Created> {
    const when = checkWhen(
      input.when,
      { minSeconds: this.settings.SANDBOT_SCHEDULE_MIN_SECONDS, timezone: this.settings.SANDBOT_TIMEZONE },
      now,
    );
    if (!when.ok) return { ok: false, status: 400, error: when.error };
    const record: ScheduleRecord = {
      id: newScheduleId(),
      conversation: input.conversation,
      newThread: input.newThread ?? false,
      owner: input.owner,
      route: input.route ?? {},
      text: input.text,
      when: when.when,
      createdAt: now.toISOString(),
      createdBy: input.actor,
    };
    const created = await this.store.create(record, {
      perUser: this.settings.SANDBOT_SCHEDULES_PER_USER,
      perChannel: this.settings.SANDBOT_SCHEDULES_PER_CHANNEL,
    });
    if (!created.ok) return { ok: false, status: 409, error: capText(created.cap, this.settings) };
    const schedule: Schedule = { ...record, paused: false, failures: 0 };
    await this.arm(schedule, now);
    await this.audit?.record({
      conversation: record.conversation,
      actor: input.actor,
      kind: 'schedule.created',
      data: { schedule: record.id, when: describeWhen(record.when), owner: personOf(record) },
    });
    return { ok: true, schedule, next: nextRun(record.when, now, now) };
  }

  get(id: string): Promise<Schedule | undefined> {
    return ScheduleId.safeParse(id).success ? this.store.get(id) : Promise.resolve(undefined);
  }

  inConversation(conversation: ConversationId): Promise<Schedule[]> {
    return this.store.inConversation(conversation);
  }

  /** A channel's schedules: a thread's channel (`slack:<team>:<channel>`), or a DM or web chat itself. */
  inChannel(channel: string): Promise<Schedule[]> {
    return this.store.inChannel(channel);
  }

  get timezone(): string {
    return this.settings.SANDBOT_TIMEZONE;
  }

  async pause(schedule: Schedule, actor: AuditActor, reason = `paused by ${actor}`): Promise<void> {
    await this.store.setPaused(schedule.id, true, reason);
    await this.disarm(schedule);
    await this.record(schedule, actor, 'schedule.paused', { reason });
  }

  async resume(schedule: Schedule, actor: AuditActor): Promise<void> {
    await this.store.setPaused(schedule.id, false);
    await this.arm(schedule);
    await this.record(schedule, actor, 'schedule.resumed', {});
  }

  async delete(schedule: Schedule, actor: AuditActor): Promise<void> {
    await this.disarm(schedule);
    await this.store.delete(schedule);
    await this.record(schedule, actor, 'schedule.deleted', {});
  }

  /** When it runs next: what its job scheduler holds (none while paused, or after a one-off ran). */
  async next(schedule: Schedule): Promise<Date | undefined> {
    if (schedule.paused) return undefined;
    if (schedule.when.kind === 'at') return schedule.last ? undefined : new Date(schedule.when.at);
    const scheduler = await this.queue.getJobScheduler(schedule.id);
    return typeof scheduler?.next === 'number' ? new Date(scheduler.next) : undefined;
  }

  /**
   * Gives an active schedule its job scheduler (or a one-off its job). An interval keeps its grid from
   * creation, so its first run is one interval after it was made, and a resume does not shift it.
   */
  async arm(schedule: Schedule, now: Date = new Date()): Promise<void> {
    const template = { name: 'run', data: { schedule: schedule.id }, opts: JOB_OPTIONS };
    const { when } = schedule;
    if (when.kind === 'at') {
      // A one-off that ran (or was skipped) is done: resuming it must not run it again.
      if (schedule.last) return;
      const delay = Math.max(0, new Date(when.at).getTime() - now.getTime());
      await this.queue.add(
        'run',
        { schedule: schedule.id },
        { ...JOB_OPTIONS, jobId: atJobId(schedule.id), delay },
      );
    } else if (when.kind === 'every') {
      const startDate = nextRun(when, new Date(schedule.createdAt), now) ?? now;
      await this.queue.upsertJobScheduler(schedule.id, { every: when.ms, startDate }, template);
    } else {
      await this.queue.upsertJobScheduler(schedule.id, { pattern: when.cron, tz: when.tz }, template);
    }
  }

  /** Takes its job scheduler away; a job already due is dropped by the runner (it checks `paused`). */
  async disarm(schedule: Schedule): Promise<void> {
    if (schedule.when.kind === 'at') await this.queue.remove(atJobId(schedule.id));
    else await this.queue.removeJobScheduler(schedule.id);
  }

  /**
   * Re-arms active schedules whose job scheduler is missing (e.g. a Redis restored without it). One
   * that is there is left alone: re-arming would move an occurrence already due.
   */
  async ensureArmed(): Promise<number> {
    let armed = 0;
    for (const schedule of await this.store.load(await this.store.allIds())) {
      if (schedule.paused || (schedule.when.kind === 'at' && schedule.last)) continue;
      const present =
        schedule.when.kind === 'at'
          ? (await this.queue.getJob(atJobId(schedule.id))) !== undefined
          : (await this.queue.getJobScheduler(schedule.id)) !== undefined;
      if (present) continue;
      await this.arm(schedule);
      armed += 1;
    }
    return armed;
  }

  private record(
    schedule: Schedule,
    actor: AuditActor,
    kind: 'schedule.paused' | 'schedule.resumed' | 'schedule.deleted',
    extra: { reason?: string },
  ): Promise<void> {
    return (
      this.audit?.record({
        conversation: schedule.conversation,
        actor,
        kind,
        data: { schedule: schedule.id, ...extra },
      } as Parameters<AuditRecorder['record']>[0]) ?? Promise.resolve()
    );
  }

  close(): Promise<void> {
    return this.queue.close();
  }
}

function capText(cap: 'user' | 'channel', settings: ScheduleSettings): string {
  return cap === 'user'
    ? `you have ${settings.SANDBOT_SCHEDULES_PER_USER} schedules already (SANDBOT_SCHEDULES_PER_USER): delete one first`
    : `this channel has ${settings.SANDBOT_SCHEDULES_PER_CHANNEL} schedules already (SANDBOT_SCHEDULES_PER_CHANNEL): delete one first`;
}
