import { ConversationId } from '../conversation/id.js';
import type { InboundMessage } from '../protocol/inbound.js';
import type { OutboundEvent } from '../protocol/outbound.js';
import { taskTitle } from '../tasks/task.js';
import type { ScheduleId, ScheduleRecord, ScheduleWhen } from './schedule.js';

/** A schedule's runs: each occurrence as a message, marked, and when a late one still runs. */

/** One message id per schedule and occurrence: a retried job submits nothing new (the queue dedups it). */
export function scheduledMessageId(id: ScheduleId, occurrence: number): string {
  return `sched-${id}-${occurrence}`;
}

/** The occurrence a scheduler's job stands for: its id is `repeat:<scheduler id>:<ms>` (BullMQ's own). */
export function occurrenceOfJobId(jobId: string | undefined): number | undefined {
  const match = /^repeat:.+:(\d+)$/.exec(jobId ?? '');
  return match ? Number(match[1]) : undefined;
}

/** How a scheduled run is marked in chat and on the web event stream. */
export const SCHEDULED_MARK = '⏰ scheduled task:';
export function scheduledNotice(text: string): string {
  return `${SCHEDULED_MARK} ${taskTitle(text, 120)}`;
}

/** Whether a failed run counts toward pausing the schedule. */
export function isFailure(outcome: string): boolean {
  return outcome === 'failed' || outcome === 'killed';
}

/** How late an occurrence may run and still count as on time (a restart, a dead worker's job taken over). */
export const CATCH_UP_GRACE_MS = 120_000;

/**
 * Whether a late occurrence runs: always with catch-up on, else only when it is late by less than the
 * grace, and less than an interval's length (later than that it was missed, not delayed).
 */
export function shouldRun(occurrence: number, now: number, catchUp: boolean, when: ScheduleWhen): boolean {
  const grace = when.kind === 'every' ? Math.min(when.ms, CATCH_UP_GRACE_MS) : CATCH_UP_GRACE_MS;
  return catchUp || now - occurrence <= grace;
}

/**
 * The conversation an occurrence runs in: the schedule's own, or with `newThread` a fresh one per run
 * (web chat: `<its conversation>-<occurrence>`, a conversation of its own with its own sandbox).
 */
export function runConversation(record: ScheduleRecord, occurrence: number): ConversationId {
  if (!record.newThread) return record.conversation;
  return ConversationId.parse(`${record.conversation}-${occurrence.toString(36)}`);
}

/** An occurrence as an ordinary message from the schedule's owner, marked as scheduled. */
export function scheduledMessage(
  record: ScheduleRecord,
  occurrence: number,
  now: Date = new Date(),
): InboundMessage {
  return {
    id: scheduledMessageId(record.id, occurrence),
    conversation: runConversation(record, occurrence),
    platform: record.owner.platform,
    user: { id: record.owner.id, ...(record.owner.name ? { name: record.owner.name } : {}) },
    text: record.text,
    receivedAt: now.toISOString(),
    route: record.route,
    files: [],
    schedule: { id: record.id, occurrence },
  };
}

/**
 * A Slack or Discord occurrence of a schedule whose runs each get a thread: the event that asks the
 * gateway to open one in the schedule's channel and submit the run there. Its id is the occurrence's,
 * so a retried job asks once.
 */
export function threadStartEvent(
  record: ScheduleRecord,
  occurrence: number,
  now: Date = new Date(),
): OutboundEvent {
  const run = scheduledMessage({ ...record, newThread: false }, occurrence, now);
  return {
    id: `${run.id}:thread`,
    conversation: record.conversation,
    platform: record.owner.platform,
    route: record.route,
    type: 'thread_start',
    title: scheduledNotice(record.text),
    run,
  };
}
