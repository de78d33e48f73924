import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { type ConversationId, conversationKey, shortHash } from '../../contracts/conversation/id.js';
import {
  type Task,
  type TaskEvent,
  TaskRecord,
  TaskStatus,
  transitionTable,
} from '../../contracts/tasks/task.js';

/** A task's record is kept this long after its last change. */
const TTL_SECONDS = 30 * 86_400;
/** Tasks listed per channel at most (the oldest drop off the index). */
const SCOPE_INDEX_MAX = 200;

/** KEYS: task scopeIndex · ARGV: record status now ttl conversation createdMs indexMax */
const CREATE = `
if redis.call('HSETNX', KEYS[1], 'record', ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'updatedAt', ARGV[3])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
if KEYS[2] ~= '' then
  redis.call('ZADD', KEYS[2], tonumber(ARGV[6]), ARGV[5])
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -tonumber(ARGV[7]) - 1)
  redis.call('EXPIRE', KEYS[2], tonumber(ARGV[4]))
end
return 1`;

/**
 * Applies a transition table atomically; keeps the set of running top-level tasks (what fairness
 * counts) and the waiting line in step with the status.
 * KEYS: task running waiting · ARGV: table now ttl conversation topLevel
 */
const APPLY = `
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return false end
local nextStatus = cjson.decode(ARGV[1])[status] or status
if nextStatus ~= status then redis.call('HSET', KEYS[1], 'status', nextStatus, 'updatedAt', ARGV[2]) end
if nextStatus == 'running' then redis.call('HDEL', KEYS[1], 'held') end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
if ARGV[5] == '1' then
  if nextStatus == 'running' then redis.call('SADD', KEYS[2], ARGV[4]) else redis.call('SREM', KEYS[2], ARGV[4]) end
  if nextStatus ~= 'queued' then redis.call('ZREM', KEYS[3], ARGV[4]) end
end
return nextStatus`;

const UNLOCK = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

type Scripted = Redis & {
  sbTaskCreate(...args: (string | number)[]): Promise<number>;
  sbTaskApply(...args: (string | number)[]): Promise<string | null>;
};

/** The task registry in Redis, shared by every gateway and worker of an instance. */
export class TaskStore {
  private readonly redis: Scripted;

  constructor(
    redis: Redis,
    private readonly instance: string,
  ) {
    redis.defineCommand('sbTaskCreate', { numberOfKeys: 2, lua: CREATE });
    redis.defineCommand('sbTaskApply', { numberOfKeys: 3, lua: APPLY });
    this.redis = redis as Scripted;
  }

  private key(conversation: string): string {
    return `${this.instance}:task:${conversationKey(conversation as ConversationId)}`;
  }

  private scopeKey(scope: string): string {
    return `${this.instance}:tasks:scope:${shortHash(scope)}`;
  }

  private get runningKey() {
    return `${this.instance}:tasks:running`;
  }

  private get waitingKey() {
    return `${this.instance}:tasks:waiting`;
  }

  /** Records a new task (queued); false when it exists already. Top-level tasks join their channel's board. */
  async create(record: TaskRecord, status: TaskStatus = 'queued'): Promise<boolean> {
    const parsed = TaskRecord.parse(record);
    const created = await this.redis.sbTaskCreate(
      this.key(parsed.conversation),
      parsed.depth === 0 ? this.scopeKey(parsed.scope) : '',
      JSON.stringify(parsed),
      status,
      new Date().toISOString(),
      TTL_SECONDS,
      parsed.conversation,
      Date.parse(parsed.createdAt),
      SCOPE_INDEX_MAX,
    );
    return Number(created) === 1;
  }

  async get(conversation: string): Promise<Task | undefined> {
    return (await this.getMany([conversation]))[0];
  }

  /** The tasks that still exist, in the order asked (missing or unreadable ones left out). */
  async getMany(conversations: readonly string[]): Promise<Task[]> {
    if (conversations.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const c of conversations) pipeline.hmget(this.key(c), 'record', 'status', 'updatedAt', 'closedBy');
    const tasks: Task[] = [];
    for (const [error, value] of (await pipeline.exec()) ?? []) {
      if (error) throw error;
      const [record, status, updatedAt, closedBy] = value as (string | null)[];
      if (!record || !status || !updatedAt) continue;
      const parsed = TaskRecord.safeParse(JSON.parse(record));
      const known = TaskStatus.safeParse(status);
      if (!parsed.success || !known.success) continue;
      tasks.push({ ...parsed.data, status: known.data, updatedAt, ...(closedBy ? { closedBy } : {}) });
    }
    return tasks;
  }

  /** Moves the task on by `event`; undefined when there is no such task. */
  async apply(conversation: string, event: TaskEvent, topLevel = true): Promise<TaskStatus | undefined> {
    const next = await this.redis.sbTaskApply(
      this.key(conversation),
      this.runningKey,
      this.waitingKey,
      JSON.stringify(transitionTable(event)),
      new Date().toISOString(),
      TTL_SECONDS,
      conversation,
      topLevel ? '1' : '0',
    );
    const parsed = TaskStatus.safeParse(next);
    return parsed.success ? parsed.data : undefined;
  }

  /** `done`: closed by someone (who is remembered for the board and the thread). */
  async close(conversation: string, by: string): Promise<TaskStatus | undefined> {
    const status = await this.apply(conversation, 'closed');
    if (status) await this.redis.hset(this.key(conversation), 'closedBy', by);
    return status;
  }

  /** The tasks of a channel, newest first. */
  async inScope(scope: string): Promise<Task[]> {
    const members = await this.redis.zrevrange(this.scopeKey(scope), 0, SCOPE_INDEX_MAX - 1);
    return this.getMany(members);
  }

  /** Top-level tasks with a turn running now (what the per-person and per-channel limits count). */
  async running(): Promise<Task[]> {
    return this.getMany(await this.redis.smembers(this.runningKey));
  }

  /** Tasks held back by a limit, with when each started waiting, oldest first. */
  async waiting(): Promise<{ task: Task; since: number }[]> {
    const flat = await this.redis.zrange(this.waitingKey, '0', '-1', 'WITHSCORES');
    const since = new Map<string, number>();
    for (let i = 0; i + 1 < flat.length; i += 2) since.set(flat[i] as string, Number(flat[i + 1]));
    const tasks = await this.getMany([...since.keys()]);
    const gone = [...since.keys()].filter((c) => !tasks.some((t) => t.conversation === c));
    if (gone.length) await this.redis.zrem(this.waitingKey, ...gone);
    return tasks.map((task) => ({ task, since: since.get(task.conversation) ?? Date.now() }));
  }

  /** Puts a task in the waiting line (keeping its place if it is there already); returns its arrival. */
  async hold(conversation: string, now = Date.now()): Promise<number> {
    await this.redis.zadd(this.waitingKey, 'NX', String(now), conversation);
    return Number((await this.redis.zscore(this.waitingKey, conversation)) ?? now);
  }

  /** Remembers the place in line last told; true when it changed (so it is recorded once). */
  async noteHeld(conversation: string, place: string): Promise<boolean> {
    const key = this.key(conversation);
    const before = await this.redis.hget(key, 'held');
    if (before === place) return false;
    await this.redis.hset(key, 'held', place);
    return true;
  }

  /** Remembers a sub-agent under its top-level task, so closing the task can wipe the whole tree. */
  async addToTree(root: string, conversation: string): Promise<void> {
    const key = `${this.key(root)}:tree`;
    await this.redis.multi().sadd(key, conversation).expire(key, TTL_SECONDS).exec();
  }

  /** The sub-agents ever started under a top-level task. */
  async tree(root: string): Promise<string[]> {
    return this.redis.smembers(`${this.key(root)}:tree`);
  }

  /** Counts one more of something per task (sub-agents of a parent, sandboxes of a tree); returns the count. */
  async bump(conversation: string, what: 'children' | 'subagents' | 'sequence', by = 1): Promise<number> {
    const key = `${this.key(conversation)}:${what}`;
    const count = await this.redis.incrby(key, by);
    await this.redis.expire(key, TTL_SECONDS);
    return count;
  }

  /**
   * Runs `work` while holding the instance's admission lock, so two workers never both take the last
   * free slot. The lock expires by itself should its holder die.
   */
  async withAdmissionLock<T>(work: () => Promise<T>): Promise<T> {
    const key = `${this.instance}:tasks:admit-lock`;
    const token = randomUUID();
    for (let attempt = 0; ; attempt++) {
      if ((await this.redis.set(key, token, 'PX', 5000, 'NX')) === 'OK') break;
      if (attempt > 200) throw new Error('the task admission lock stayed taken for 10 s');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    try {
      return await work();
    } finally {
      await this.redis.eval(UNLOCK, 1, key, token).catch(() => undefined);
    }
  }
}
