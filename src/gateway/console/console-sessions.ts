import type { Redis } from 'ioredis';
import { z } from 'zod';
import { consoleKeys } from '../../contracts/redis/keys.js';
import { randomToken, SESSION_SECONDS } from './console-security.js';

export interface ConsoleSession {
  id: string;
  /** The operator's name, recorded with every action. */
  name: string;
  csrf: string;
}

const Stored = z.object({
  name: z.string().min(1).max(100),
  csrf: z.string().min(20),
  flash: z.string().optional(),
});

/** Failed sign-ins one address may make in a window before it must wait. */
export const MAX_FAILURES = 10;
const FAILURE_WINDOW_SECONDS = 15 * 60;

/**
 * Operators' sessions in Redis (the cookie holds only the random id; the key holds its hash): the name
 * and the CSRF token, expiring SESSION_SECONDS after sign-in. Also the sign-in failure counter.
 */
export class ConsoleSessions {
  private readonly keys: ReturnType<typeof consoleKeys>;

  constructor(
    private readonly redis: Redis,
    instance: string,
  ) {
    this.keys = consoleKeys(instance);
  }

  async create(name: string): Promise<ConsoleSession> {
    const session = { id: randomToken(), name, csrf: randomToken() };
    const key = this.keys.session(session.id);
    await this.redis.multi().hset(key, { name, csrf: session.csrf }).expire(key, SESSION_SECONDS).exec();
    return session;
  }

  async get(id: string | undefined): Promise<ConsoleSession | undefined> {
    if (!id) return undefined;
    const parsed = Stored.safeParse(await this.redis.hgetall(this.keys.session(id)));
    return parsed.success ? { id, name: parsed.data.name, csrf: parsed.data.csrf } : undefined;
  }

  async end(id: string): Promise<void> {
    await this.redis.del(this.keys.session(id));
  }

  /** A note for the next page this session shows (what an action did). */
  async setFlash(id: string, note: string): Promise<void> {
    await this.redis.hset(this.keys.session(id), 'flash', note.slice(0, 1000));
  }

  /** The note, once. */
  async takeFlash(id: string): Promise<string | undefined> {
    const key = this.keys.session(id);
    const [[, note]] = ((await this.redis.multi().hget(key, 'flash').hdel(key, 'flash').exec()) ?? [
      [null, null],
    ]) as [[unknown, string | null]];
    return note ?? undefined;
  }

  /** Whether this address has failed too often lately. */
  async blocked(address: string): Promise<boolean> {
    return Number((await this.redis.get(this.keys.failures(address))) ?? 0) >= MAX_FAILURES;
  }

  async noteFailure(address: string): Promise<void> {
    const key = this.keys.failures(address);
    if ((await this.redis.incr(key)) === 1) await this.redis.expire(key, FAILURE_WINDOW_SECONDS);
  }
}
