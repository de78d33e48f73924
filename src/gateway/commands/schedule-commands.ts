import type { AuditActor } from '../../contracts/audit/events.js';
import type { ConversationId } from '../../contracts/conversation/id.js';
import type { ReplyRoute } from '../../contracts/protocol/inbound.js';
import { describeWhen, type Schedule, type ScheduleOwner } from '../../contracts/schedules/schedule.js';
import { taskTitle } from '../../contracts/tasks/task.js';
import { mayManage, type Schedules } from '../../shared/schedules/schedules.js';
import { splitWhen } from './schedule-when.js';

/**
 * The chat side of schedules, shared by Slack (`/sandbot schedule|schedules`) and Discord (`/schedule`,
 * `/schedules`): the platform finds the conversation and who asks, this makes, lists and manages, and
 * answers in words. Times are shown by the platform's own formatter (each reader's time zone).
 */
export interface ScheduleCaller {
  owner: ScheduleOwner;
  /** `<platform>:<user id>`. */
  person: string;
  admin: boolean;
  actor: AuditActor;
}

export interface ChatFormat {
  time(iso: string): string;
  code(text: string): string;
  /** The command that lists and manages, as the platform spells it. */
  manage: string;
}

export async function createFromChat(
  schedules: Schedules,
  request: {
    /** `<when> <task>` in one text (Slack), or only `<when>` when the task comes apart (Discord). */
    text: string;
    task?: string;
    conversation: ConversationId;
    route: ReplyRoute;
    caller: ScheduleCaller;
    /** Each run in a thread of its own in the channel (`conversation` is then the channel's). */
    newThread?: boolean;
  },
  format: ChatFormat,
  now: Date = new Date(),
): Promise<string> {
  const read = await splitWhen(request.text, now, schedules.timezone);
  if (!read.ok) return read.error;
  if (request.task !== undefined && read.task !== '') {
    return `I could not read “${read.task}” in when: give only the time there, e.g. \`every weekday at 9:00\`.`;
  }
  const split = { ...read, task: request.task?.trim() ?? read.task };
  if (split.task === '')
    return 'What should it do? Put the task after the time, e.g. `every weekday at 9:00 summarise yesterday’s failed CI runs`.';
  const created = await schedules.create(
    {
      conversation: request.conversation,
      owner: request.caller.owner,
      route: request.route,
      text: split.task,
      when: split.when,
      actor: request.caller.actor,
      ...(request.newThread ? { newThread: true } : {}),
    },
    now,
  );
  if (!created.ok) return `Not scheduled: ${created.error}.`;
  const { schedule, next } = created;
  const when = describeWhen(schedule.when);
  const nextText = next ? ` Next run: ${format.time(next.toISOString())}.` : '';
  const where = schedule.newThread ? ' Each run starts a thread of its own here.' : '';
  return `⏰ Scheduled ${format.code(schedule.id)} (${when}): “${taskTitle(schedule.text)}”.${where}${nextText} See or change it with ${format.manage}.`;
}

/** `schedules` (the list), or `schedules pause|resume|delete <id>`. */
export async function schedulesCommand(
  schedules: Schedules,
  request: { words: string[]; channel: string; caller: ScheduleCaller },
  format: ChatFormat,
): Promise<string> {
  const [verb = 'list', id = ''] = request.words.map((w) => w.trim()).filter(Boolean);
  if (verb === 'list') return listText(schedules, await schedules.inChannel(request.channel), format);
  if (verb !== 'pause' && verb !== 'resume' && verb !== 'delete') {
    return `I know ${format.manage} (the list) and ${format.manage} pause|resume|delete <id>.`;
  }
  const schedule = await schedules.get(id);
  if (!schedule) return `There is no schedule ${format.code(id || '<id>')}: ${format.manage} lists them.`;
  if (!mayManage(schedule, request.caller.person, request.caller.admin)) {
    return `Only whoever made ${format.code(schedule.id)}, or an admin, can ${verb} it.`;
  }
  if (verb === 'delete') {
    await schedules.delete(schedule, request.caller.actor);
    return `Deleted ${format.code(schedule.id)}: it will not run again.`;
  }
  if (verb === 'pause') {
    if (!schedule.paused) await schedules.pause(schedule, request.caller.actor);
    return `Paused ${format.code(schedule.id)}.`;
  }
  if (schedule.paused) await schedules.resume(schedule, request.caller.actor);
  const next = await schedules.next({ ...schedule, paused: false });
  return `Resumed ${format.code(schedule.id)}.${next ? ` Next run: ${format.time(next.toISOString())}.` : ''}`;
}

async function listText(schedules: Schedules, found: Schedule[], format: ChatFormat): Promise<string> {
  if (found.length === 0) return 'No schedules here yet. Make one with e.g. `every weekday at 9:00 <task>`.';
  const lines = await Promise.all(
    found.map(async (s) => {
      const next = await schedules.next(s);
      const state = s.paused
        ? `paused (${s.pausedReason ?? 'paused'})`
        : next
          ? `next ${format.time(next.toISOString())}`
          : 'done';
      const last = s.last ? ` · last ${format.time(s.last.at)}: ${s.last.outcome}` : '';
      return `• ${format.code(s.id)} ${describeWhen(s.when)} · “${taskTitle(s.text, 60)}” · <owner> · ${state}${last}`.replace(
        '<owner>',
        s.owner.name ?? s.owner.id,
      );
    }),
  );
  return `*Schedules here*\n${lines.join('\n')}`;
}
