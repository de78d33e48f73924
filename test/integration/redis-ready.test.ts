import { describe, expect, it } from 'vitest';
import { createFailFastRedis, readyOrTimeout } from '../../src/shared/redis/connection.js';
import { REDIS_URL } from '../../testkit/redis.js';

/**
 * A fail-fast connection refuses commands until it is ready; the gateway waits for that before it
 * listens, so its first requests are not 503s (seen in CI: an event stream opened 57 ms after start).
 */
describe('readyOrTimeout', () => {
  it('resolves once a new fail-fast connection takes commands', async () => {
    const redis = createFailFastRedis(REDIS_URL, 'ready-test');
    try {
      expect(redis.status).not.toBe('ready');
      expect(await readyOrTimeout(redis, 10_000)).toBe(true);
      expect(redis.status).toBe('ready');
      expect(await readyOrTimeout(redis, 10_000)).toBe(true);
      await expect(redis.ping()).resolves.toBe('PONG');
    } finally {
      redis.disconnect();
    }
  });

  it('gives up after the timeout when Redis is not there, without throwing', async () => {
    const redis = createFailFastRedis('redis://127.0.0.1:9', 'ready-test-down');
    try {
      expect(await readyOrTimeout(redis, 300)).toBe(false);
      expect(redis.status).not.toBe('ready');
      await expect(redis.ping()).rejects.toThrow();
    } finally {
      redis.disconnect();
    }
  });
});
