import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';

export const REDIS_URL = process.env.SANDBOT_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A unique instance name per test file, so files can share one Redis and one engine. */
export function testInstance(label: string): string {
  return `t-${label}-${randomBytes(3).toString('hex')}`;
}

/** Deletes every key of a test instance. */
export async function dropInstanceKeys(instance: string): Promise<void> {
  const redis = new Redis(REDIS_URL);
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${instance}:*`, 'COUNT', 500);
      cursor = next;
      if (keys.length) await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}
