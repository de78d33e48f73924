import type { Redis } from 'ioredis';
import type { AuditActor } from '../../contracts/audit/events.js';
import type { Logger } from '../../contracts/log/logger.js';
import type { OutboundEvent } from '../../contracts/protocol/outbound.js';
import { bullPrefix, SCHEDULE_QUEUE } from '../../contracts/redis/keys.js';
import type { Schedule } from '../../contracts/schedules/schedule.js';
import {
  isFailure,
  occurrenceOfJobId,
  scheduledMessage,
  shouldRun,
  threadStartEvent,
} from '../../contracts/schedules/schedule-run.js';
import type { AuditRecorder } from '../../shared/audit/audit-log.js';
import type { Turn } from '../../shared/queue/conversation-store.js';
import type { InboundQueue } from '../../shared/queue/inbound-queue.js';
import { type Job, UnrecoverableError, Worker } from '../../shared/redis/bullmq.js';
import { ScheduleJob, type Schedules } from '../../shared/schedules/schedules.js';
import type { Quarantine } from '../../shared/stores/quarantine.js';

export interface ScheduleRunnerDeps {
  schedules: Schedules;
  inbound: InboundQueue;
  quarantine: Quarantine;
  audit?: AuditRecorder;
  publish(event: OutboundEvent): Promise<void>;
  logger: Logger;
  actor(): AuditActor;
  instance: string;
  /** SANDBOT_SCHEDULE_CATCH_UP: an occurrence missed while down runs (once) when back. */
  catchUp: boolean;
  /** SANDBOT_SCHEDULE_MAX_FAILURES. */
  maxFailures: number;
}

/**
 * The workers' side of schedules: consumes the schedule queue, turning each occurrence into an ordinary
 * message from the schedule's owner. The message id comes from the schedule and the occurrence, so a
 * job retried after a worker died mid-way submits nothing twice (the inbound queue drops a seen id).
 * After the run's turn, records how it went and pauses a schedule that keeps failing.
 */
export class ScheduleRunner {
  private worker?: Worker;

  constructor(private readonly deps: ScheduleRunnerDeps) {}

  start(connection: Redis): void {
    this.worker = new Worker(SCHEDULE_QUEUE, (job) => this.process(job), {
      connection,
      prefix: bullPrefix(this.deps.instance),
      concurrency: 4,
    });
    this.worker.on('failed', (job, error) =>
      this.deps.logger.error({ jobId: job?.id, err: error }, 'schedule job failed'),
    );
    this.worker.on('error', (error) => this.deps.logger.warn({ err: error }, 'schedule worker error'));
    this.deps.schedules
      .ensureArmed()
      .then((armed) => armed && this.deps.logger.info({ armed }, 'schedules re-armed'))
      .catch((error: unknown) => this.deps.logger.warn({ err: error }, 'checking schedules failed'));
  }

  async process(job: Job): Promise<string> {
    const parsed = ScheduleJob.safeParse(job.data);
    if (!parsed.success) throw new UnrecoverableError(`schedule job ${job.id} is malformed`);
    const schedule = await this.deps.schedules.get(parsed.data.schedule);
    if (!schedule) return 'deleted';
    if (schedule.paused) return 'paused';
    const occurrence = occurrenceOf(schedule, job);
    const quarantined = await this.deps.quarantine.get(schedule.conversation);
    if (quarantined) {
      await this.deps.schedules.pause(
        schedule,
        this.deps.actor(),
        `its conversation is quarantined (${quarantined.reason})`,
      );
      return 'quarantined';
    }
    if (!shouldRun(occurrence, Date.now(), this.deps.catchUp, schedule.when)) {
      await this.skip(
        schedule,
        occurrence,
        'missed while sandbot was down (SANDBOT_SCHEDULE_CATCH_UP=false)',
      );
      return 'skipped';
    }
    if (schedule.newThread && schedule.owner.platform !== 'web') {
      // Only the gateway can open a thread in Slack or Discord: it posts the run's title, then submits.
      await this.deps.publish(threadStartEvent(schedule, occurrence));
      return 'thread asked for';
    }
    const result = await this.deps.inbound.submit(scheduledMessage(schedule, occurrence));
    return result.status;
  }

  private async skip(schedule: Schedule, occurrence: number, reason: string): Promise<void> {
    const at = new Date(occurrence).toISOString();
    await this.deps.schedules.store.runEnded(schedule.id, { at, outcome: 'skipped' }, false);
    await this.deps.audit?.record({
      conversation: schedule.conversation,
      actor: this.deps.actor(),
      kind: 'schedule.skipped',
      data: { schedule: schedule.id, occurrence: at, reason },
    });
  }

  /** After a turn: each scheduled message in it gets its run recorded (with the turn), failures counted. */
  async turnEnded(turn: Turn, outcome: string): Promise<void> {
    for (const message of turn.messages) {
      if (!message.schedule) continue;
      const { id, occurrence } = message.schedule;
      const at = new Date(occurrence).toISOString();
      const failures = await this.deps.schedules.store.runEnded(
        id,
        { at, outcome, turnId: turn.turnId },
        isFailure(outcome),
      );
      await this.deps.audit?.record({
        conversation: turn.conversation,
        turnId: turn.turnId,
        actor: this.deps.actor(),
        kind: 'schedule.run',
        data: { schedule: id, occurrence: at, outcome },
      });
      if (failures >= this.deps.maxFailures) await this.pauseFailing(turn, id, failures);
    }
  }

  private async pauseFailing(turn: Turn, id: string, failures: number): Promise<void> {
    const schedule = await this.deps.schedules.get(id);
    if (!schedule || schedule.paused) return;
    await this.deps.schedules.pause(schedule, this.deps.actor(), `${failures} runs failed in a row`);
    const last = turn.messages.at(-1);
    await this.deps.publish({
      id: `${turn.turnId}:schedule-paused:${id}`,
      conversation: turn.conversation,
      platform: last?.platform ?? schedule.owner.platform,
      route: last?.route ?? schedule.route,
      turnId: turn.turnId,
      type: 'error',
      message: `Schedule ${id} is paused: its last ${failures} runs failed. Resume it when the cause is fixed.`,
    });
  }

  async stop(): Promise<void> {
    await this.worker?.close();
    await this.deps.schedules.close();
  }
}

/** The occurrence a job stands for: a scheduler's is in its id, a one-off's is its time. */
function occurrenceOf(schedule: Schedule, job: Job): number {
  if (schedule.when.kind === 'at') return new Date(schedule.when.at).getTime();
  return occurrenceOfJobId(job.id) ?? job.timestamp;
}
