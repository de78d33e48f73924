import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { type TaskCounter, taskKeys } from '../../contracts/redis/keys.js';
import { DELETE_IF_HELD, TASK_APPLY, TASK_CREATE } from '../../contracts/redis/scripts.js';
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

type Scripted = Redis & {
  sbTaskCreate(...args: (string | number)[]): Promise<number>;
  sbTaskApply(...args: (string | number)[]): Promise<string | null>;
};

/** The task registry in Redis, shared by every gateway and worker of an instance. */
export class TaskStore {
  private readonly redis: Scripted;
  private readonly keys: ReturnType<typeof taskKeys>;

  constructor(redis: Redis, instance: string) {
    redis.defineCommand('sbTaskCreate', { numberOfKeys: 2, lua: TASK_CREATE });
    redis.defineCommand('sbTaskApply', { numberOfKeys: 3, lua: TASK_APPLY });
    this.redis = redis as Scripted;
    this.keys = taskKeys(instance);
  }

  /** Records a new task (queued); false when it exists already. Top-level tasks join their channel's board. */
  async create(record: TaskRecord, status: TaskStatus = 'queued'): Promise<boolean> {
    const parsed = TaskRecord.parse(record);
    const created = await this.redis.sbTaskCreate(
      this.keys.task(parsed.conversation),
      parsed.depth === 0 ? this.keys.scope(parsed.scope) : '',
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
    for (const c of conversations)
      pipeline.hmget(this.keys.task(c), 'record', 'status', 'updatedAt', 'closedBy');
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
      this.keys.task(conversation),
      this.keys.running,
      this.keys.waiting,
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
    if (status) await this.redis.hset(this.keys.task(conversation), 'closedBy', by);
    return status;
  }

  /** The tasks of a channel, newest first. */
  async inScope(scope: string): Promise<Task[]> {
    const members = await this.redis.zrevrange(this.keys.scope(scope), 0, SCOPE_INDEX_MAX - 1);
    return this.getMany(members);
  }

  /** Top-level tasks with a turn running now (what the per-person and per-channel limits count). */
  async running(): Promise<Task[]> {
    return this.getMany(await this.redis.smembers(this.keys.running));
  }

  /** Tasks held back by a limit, with when each started waiting, oldest first. */
  async waiting(): Promise<{ task: Task; since: number }[]> {
    const flat = await this.redis.zrange(this.keys.waiting, '0', '-1', 'WITHSCORES');
    const since = new Map<string, number>();
    for (let i = 0; i + 1 < flat.length; i += 2) since.set(flat[i] as string, Number(flat[i + 1]));
    const tasks = await this.getMany([...since.keys()]);
    const gone = [...since.keys()].filter((c) => !tasks.some((t) => t.conversation === c));
    if (gone.length) await this.redis.zrem(this.keys.waiting, ...gone);
    return tasks.map((task) => ({ task, since: since.get(task.conversation) ?? Date.now() }));
  }

  /** Puts a task in the waiting line (keeping its place if it is there already); returns its arrival. */
  async hold(conversation: string, now = Date.now()): Promise<number> {
    await this.redis.zadd(this.keys.waiting, 'NX', String(now), conversation);
    return Number((await this.redis.zscore(this.keys.waiting, conversation)) ?? now);
  }

  /** Remembers the place in line last told; true when it changed (so it is recorded once). */
  async noteHeld(conversation: string, place: string): Promise<boolean> {
    const key = this.keys.task(conversation);
    const before = await this.redis.hget(key, 'held');
    if (before === place) return false;
    await this.redis.hset(key, 'held', place);
    return true;
  }

  /** Remembers a sub-agent under its top-level task, so closing the task can wipe the whole tree. */
  async addToTree(root: string, conversation: string): Promise<void> {
    const key = this.keys.tree(root);
    await this.redis.multi().sadd(key, conversation).expire(key, TTL_SECONDS).exec();
  }

  /** The sub-agents ever started under a top-level task. */
  async tree(root: string): Promise<string[]> {
    return this.redis.smembers(this.keys.tree(root));
  }

  /** Counts one more of something per task (sub-agents of a parent, sandboxes of a tree); returns the count. */
  async bump(conversation: string, what: TaskCounter, by = 1): Promise<number> {
    const key = this.keys.counter(conversation, what);
    const count = await this.redis.incrby(key, by);
    await this.redis.expire(key, TTL_SECONDS);
    return count;
  }

  /**
   * Runs `work` while holding the instance's admission lock, so two workers never both take the last
   * free slot. The lock expires by itself should its holder die.
   */
  async withAdmissionLock<T>(work: () => Promise<T>): Promise<T> {
    const key = this.keys.admitLock;
    const token = randomUUID();
    for (let attempt = 0; ; attempt++) {
      if ((await this.redis.set(key, token, 'PX', 5000, 'NX')) === 'OK') break;
      if (attempt > 200) throw new Error('the task admission lock stayed taken for 10 s');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    try {
      return await work();
    } finally {
      await this.redis.eval(DELETE_IF_HELD, 1, key, token).catch(() => undefined);
    }
  }
}
