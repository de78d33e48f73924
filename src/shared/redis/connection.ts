import { Redis } from 'ioredis';

/**
 * One ioredis connection. `maxRetriesPerRequest: null` is what BullMQ workers require, and it also
 * makes every other command wait for a reconnect instead of failing, so a Redis restart is ridden out.
 */
export function createRedis(url: string, name: string): Redis {
  return quiet(
    new Redis(url, {
      maxRetriesPerRequest: null,
      connectionName: name,
      enableReadyCheck: true,
      retryStrategy: (attempt) => Math.min(attempt * 200, 2000),
    }),
  );
}

/** For request paths that must answer quickly (HTTP submit, health): fail fast instead of waiting. */
export function createFailFastRedis(url: string, name: string): Redis {
  return quiet(
    new Redis(url, {
      maxRetriesPerRequest: 1,
      connectionName: name,
      enableOfflineQueue: false,
      retryStrategy: (attempt) => Math.min(attempt * 200, 2000),
    }),
  );
}

/**
 * Resolves true once `redis` is ready, or false after `timeoutMs` whatever its state. A fail-fast connection
 * refuses commands until then, so a server that starts answering before it is ready would turn its
 * first requests into 503s; a Redis that is down at start is left to the health checks to report.
 */
export async function readyOrTimeout(redis: Redis, timeoutMs: number): Promise<boolean> {
  if (redis.status === 'ready') return true;
  return new Promise<boolean>((resolve) => {
    const done = () => {
      clearTimeout(timer);
      redis.off('ready', done);
      resolve(redis.status === 'ready');
    };
    const timer = setTimeout(done, timeoutMs);
    redis.once('ready', done);
  });
}

/**
 * Connection errors while Redis is away are expected (the client reconnects, and the commands that
 * failed report it to their callers); without a listener ioredis would print each one as unhandled.
 */
function quiet(redis: Redis): Redis {
  redis.on('error', () => undefined);
  return redis;
}
