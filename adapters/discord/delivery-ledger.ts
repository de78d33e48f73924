import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { shortHash } from '../../src/contracts/conversation/id.js';

export type Claim =
  | { status: 'claimed'; release(): Promise<void>; done(): Promise<void> }
  | { status: 'done' }
  | { status: 'busy' };

// Deletes the claim only if it is still ours (a claim that expired may belong to a retry by now).
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

/**
 * Which posts were made, shared by every gateway through Redis, so a retried turn or a retried delivery
 * posts each part once. A part is claimed (`SET NX` with a short expiry) before it is posted, marked done
 * after, and released when posting failed, so the queue's retry can post it.
 *
 * Crash window: a gateway that dies after Discord accepted the post but before `done` leaves a claim
 * that expires after `claimSeconds`; the retry then posts that part a second time. A gateway that dies
 * before posting loses nothing: the claim expires and the retry posts. So delivery is at least once,
 * with a duplicate only for a crash inside one Redis round trip.
 */
export class DeliveryLedger {
  constructor(
    private readonly redis: Redis,
    private readonly instance: string,
    private readonly claimSeconds = 60,
    private readonly doneSeconds = 7 * 86_400,
  ) {}

  private key(id: string): string {
    return `${this.instance}:discord:delivered:${shortHash(id)}`;
  }

  async claim(id: string): Promise<Claim> {
    const key = this.key(id);
    const token = `claim:${randomUUID()}`;
    const won = await this.redis.set(key, token, 'EX', this.claimSeconds, 'NX');
    if (won === 'OK') {
      return {
        status: 'claimed',
        release: async () => {
          await this.redis.eval(RELEASE, 1, key, token);
        },
        done: async () => {
          await this.redis.set(key, 'done', 'EX', this.doneSeconds);
        },
      };
    }
    return (await this.redis.get(key)) === 'done' ? { status: 'done' } : { status: 'busy' };
  }

  async isDone(id: string): Promise<boolean> {
    return (await this.redis.get(this.key(id))) === 'done';
  }

  /**
   * Runs `post` once per id across retries and gateways. Throws when another delivery holds the claim
   * (so the queue retries later) or when `post` fails (after releasing the claim).
   */
  async once<T>(id: string, post: () => Promise<T>): Promise<T | undefined> {
    const claim = await this.claim(id);
    if (claim.status === 'done') return undefined;
    if (claim.status === 'busy') throw new Error(`delivery ${id} is in progress elsewhere; retrying later`);
    let result: T;
    try {
      result = await post();
    } catch (error) {
      await claim.release().catch(() => undefined);
      throw error;
    }
    await claim.done();
    return result;
  }
}
