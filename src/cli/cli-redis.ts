import { Redis } from 'ioredis';

/**
 * Redis for a CLI command: connected before any command is sent (a fail-fast client that sends early
 * fails with "Stream isn't writeable"), no retries, so a command never hangs on a dead server and its
 * failure can be said in one line.
 */
export type CliRedis = { ok: true; redis: Redis } | { ok: false; error: string };

export async function connectCliRedis(url: string, timeoutMs = 3000): Promise<CliRedis> {
  const redis = new Redis(url, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs * 2,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  // connect() only says "Connection is closed."; the socket's own error (refused, unknown host) comes here.
  let socketError: Error | undefined;
  redis.on('error', (error: Error) => {
    socketError ??= error;
  });
  try {
    await redis.connect();
    return { ok: true, redis };
  } catch (error) {
    redis.disconnect();
    const why = (socketError ?? (error as Error)).message;
    return { ok: false, error: `Redis is not reachable at ${shownUrl(url)} (${why})` };
  }
}

/** The URL without its password, for messages. */
export function shownUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString().replace(/\/$/, '');
  } catch {
    return '(unparsable SANDBOT_REDIS_URL)';
  }
}
