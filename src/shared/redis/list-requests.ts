import type { Redis } from 'ioredis';
import type { Logger } from '../../contracts/log/logger.js';

/**
 * Requests through a Redis list, answered in a list per request: how a gateway or the CLI asks
 * whichever worker takes a command first (skill commands, host moves), and waits for its answer.
 */

/** Pushes `answer` for its asker, kept `ttlSeconds` in case the asker is not blocked on it yet. */
export async function pushAnswer(
  redis: Redis,
  key: string,
  answer: string,
  ttlSeconds: number,
): Promise<void> {
  await redis.multi().rpush(key, answer).expire(key, ttlSeconds).exec();
}

/**
 * Takes the requests in `key` one at a time until stopped and hands each to `take`. BRPOP holds its
 * connection, so the loop has one of its own; a failure is logged and retried after a second.
 */
export function serveListRequests(options: {
  redis: Redis;
  key: string;
  take: (raw: string) => Promise<unknown>;
  logger: Logger;
  /** What the requests are, for the log ("a skill command"). */
  what: string;
}): { stop(): Promise<void> } {
  const reader = options.redis.duplicate({ maxRetriesPerRequest: null, commandTimeout: undefined });
  reader.on('error', () => undefined);
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      try {
        const taken = await reader.brpop(options.key, 5);
        if (taken) await options.take(taken[1]);
      } catch (error) {
        if (stopped) return;
        options.logger.warn({ err: error }, `serving ${options.what} failed`);
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    }
  })();
  return {
    /** Ends the loop once the request in hand is done. */
    async stop() {
      stopped = true;
      reader.disconnect();
      await loop;
    },
  };
}
