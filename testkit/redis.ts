import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { parseEnv } from 'node:util';
import { Redis } from 'ioredis';

/** The environment's, else `.env`'s (where scripts/setup.sh puts the password of a Redis it started). */
export const REDIS_URL = process.env.SANDBOT_REDIS_URL ?? envFileUrl('.env') ?? 'redis://127.0.0.1:6379';

function envFileUrl(file: string): string | undefined {
  if (!existsSync(file)) return undefined;
  return parseEnv(readFileSync(file, 'utf8')).SANDBOT_REDIS_URL || undefined;
}

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
