import type { Redis } from 'ioredis';
import type { Config } from '../contracts/config/schema.js';
import { deliveryLayout } from '../contracts/redis/chat-keys.js';
import { TaskStore } from '../shared/stores/task-store.js';
import type { AdapterDeps } from './chat-adapter.js';
import { type ChatThrottles, EditPacer, NoticeThrottle } from './chat-throttles.js';
import { DeliveryOnce } from './delivery-once.js';
import { RateLimiter } from './rate-limiter.js';
import { rateLimitSettings } from './rate-limits.js';

/** The Redis-backed pieces the gateway hands every chat adapter, on one connection. */
export function chatServices(
  redis: Redis,
  config: Parameters<typeof rateLimitSettings>[0] & Pick<Config, 'SANDBOT_INSTANCE'>,
  options: {
    /** The rate limits' connection: a fail-fast one, so a message is refused (503) rather than held when Redis is down. */
    limitsRedis?: Redis;
    /** The rate limits' clock (tests move it past a window). */
    clock?: () => number;
  } = {},
): Pick<AdapterDeps, 'deliveryOnce' | 'tasks' | 'throttles' | 'limits'> {
  const instance = config.SANDBOT_INSTANCE;
  const throttles: ChatThrottles = {
    notices: new NoticeThrottle(redis),
    editPacer: (intervalMs) => new EditPacer(intervalMs),
  };
  return {
    deliveryOnce: (platform) => new DeliveryOnce(redis, deliveryLayout(instance, platform)),
    tasks: new TaskStore(redis, instance),
    throttles,
    limits: new RateLimiter(
      options.limitsRedis ?? redis,
      instance,
      rateLimitSettings(config),
      new NoticeThrottle(options.limitsRedis ?? redis),
      options.clock,
    ),
  };
}
