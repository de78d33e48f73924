import type { Redis } from 'ioredis';
import type { ConversationId } from '../../contracts/conversation/id.js';
import { scheduleKeys } from '../../contracts/redis/keys.js';
import { SCHEDULE_CREATE, SCHEDULE_RUN_END } from '../../contracts/redis/scripts.js';
import { LastRun, type Schedule, ScheduleRecord } from '../../contracts/schedules/schedule.js';
import { taskScopeOf } from '../../contracts/tasks/task.js';

export interface ScheduleCaps {
  perUser: number;
  perChannel: number;
}

export type CreateResult = { ok: true } | { ok: false; cap: 'user' | 'channel' };

/** The person a schedule belongs to, as the caps count them: `<platform>:<user id>`. */
export const personOf = (record: Pick<ScheduleRecord, 'owner'>) =>
  `${record.owner.platform}:${record.owner.id}`;

/** The channel a schedule counts toward: a thread's channel, else the conversation itself (DM, web chat). */
export const channelOf = (conversation: ConversationId) => taskScopeOf(conversation) ?? conversation;

/**
 * Schedules in Redis: the record as made (JSON, never changed) beside its state (paused, failures in a
 * row, the last run), in one hash each; sets list them by conversation, person and channel. Every read
 * is checked with zod as it leaves Redis.
 */
export class ScheduleStore {
  constructor(
    private readonly redis: Redis,
    private readonly instance: string,
  ) {}

  private get keys() {
    return scheduleKeys(this.instance);
  }

  async create(record: ScheduleRecord, caps: ScheduleCaps): Promise<CreateResult> {
    const k = this.keys;
    const code = await this.redis.eval(
      SCHEDULE_CREATE,
      5,
      k.schedule(record.id),
      k.all,
      k.conversation(record.conversation),
      k.owner(personOf(record)),
      k.channel(channelOf(record.conversation)),
      record.id,
      JSON.stringify(ScheduleRecord.parse(record)),
      caps.perUser,
      caps.perChannel,
    );
    if (code === 1) return { ok: false, cap: 'user' };
    if (code === 2) return { ok: false, cap: 'channel' };
    return { ok: true };
  }

  async get(id: string): Promise<Schedule | undefined> {
    const fields = await this.redis.hgetall(this.keys.schedule(id));
    return fields.record === undefined ? undefined : fromFields(fields);
  }

  /** The schedules made in a conversation, oldest first. */
  async inConversation(conversation: ConversationId): Promise<Schedule[]> {
    return this.load(await this.redis.smembers(this.keys.conversation(conversation)));
  }

  /** The schedules of a channel (a thread's channel; a DM or web chat is its own), oldest first. */
  async inChannel(channel: string): Promise<Schedule[]> {
    return this.load(await this.redis.smembers(this.keys.channel(channel)));
  }

  /** Every schedule's id. */
  allIds(): Promise<string[]> {
    return this.redis.smembers(this.keys.all);
  }

  async load(ids: string[]): Promise<Schedule[]> {
    const found = await Promise.all(ids.map((id) => this.get(id)));
    return found
      .filter((s): s is Schedule => s !== undefined)
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  async setPaused(id: string, paused: boolean, reason?: string): Promise<void> {
    const key = this.keys.schedule(id);
    if (paused) await this.redis.hset(key, 'paused', '1', 'pausedReason', reason ?? 'paused');
    else await this.redis.multi().hset(key, 'paused', '0', 'failures', '0').hdel(key, 'pausedReason').exec();
  }

  /** Records a run's end; returns the failures in a row now (-1: the schedule is gone). */
  async runEnded(id: string, last: LastRun, failed: boolean): Promise<number> {
    const result = await this.redis.eval(
      SCHEDULE_RUN_END,
      1,
      this.keys.schedule(id),
      JSON.stringify(LastRun.parse(last)),
      failed ? '1' : '0',
    );
    return Number(result);
  }

  async delete(schedule: Schedule): Promise<void> {
    const k = this.keys;
    await this.redis
      .multi()
      .del(k.schedule(schedule.id))
      .srem(k.all, schedule.id)
      .srem(k.conversation(schedule.conversation), schedule.id)
      .srem(k.owner(personOf(schedule)), schedule.id)
      .srem(k.channel(channelOf(schedule.conversation)), schedule.id)
      .exec();
  }
}

function fromFields(fields: Record<string, string>): Schedule {
  const record = ScheduleRecord.parse(JSON.parse(fields.record ?? '{}'));
  const last = fields.last ? LastRun.safeParse(JSON.parse(fields.last)) : undefined;
  return {
    ...record,
    paused: fields.paused === '1',
    ...(fields.pausedReason ? { pausedReason: fields.pausedReason } : {}),
    failures: Number(fields.failures ?? '0'),
    ...(last?.success ? { last: last.data } : {}),
  };
}
