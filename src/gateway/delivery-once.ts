import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { DeliveryLayout } from '../contracts/redis/chat-keys.js';
import { DELETE_IF_HELD } from '../contracts/redis/scripts.js';

/**
 * Which parts of outbound events were posted, shared by every gateway through Redis, so a retried turn
 * or a retried delivery posts each part once. A part is claimed (`SET NX` with a short expiry) before it
 * is posted, marked done after, and released when posting failed, so the queue's retry can post it.
 *
 * Crash window: a gateway that dies after the platform accepted a post but before it marked the part
 * done leaves a claim that expires, and the retry posts that part a second time. A gateway that dies
 * before posting delays the part by at most the claim's expiry. So delivery is at least once, with a
 * duplicate only for a crash inside one Redis round trip.
 */
export class DeliveryOnce {
  constructor(
    private readonly redis: Redis,
    private readonly layout: DeliveryLayout,
  ) {}

  /**
   * Runs `post` once per id across retries and gateways; undefined when it already ran. Throws when
   * another delivery holds the claim (so the queue retries later) or when `post` fails (after releasing
   * the claim).
   */
  async once<T>(id: string, post: () => Promise<T>): Promise<T | undefined> {
    const key = this.layout.key(id);
    const token = `claim:${randomUUID()}`;
    const claimed = await this.redis.set(key, token, 'EX', this.layout.claimSeconds, 'NX');
    if (claimed === null) {
      if ((await this.redis.get(key)) === 'done') return undefined;
      // Another delivery of the same part is under way (or died): retry after it settles or expires.
      throw new Error(`delivery of ${id} is in progress elsewhere; the queue will retry it`);
    }
    let result: T;
    try {
      result = await post();
    } catch (error) {
      await this.redis.eval(DELETE_IF_HELD, 1, key, token).catch(() => undefined);
      throw error;
    }
    await this.redis.set(key, 'done', 'EX', this.layout.doneSeconds);
    return result;
  }
}
