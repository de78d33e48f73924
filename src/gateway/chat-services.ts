import type { Redis } from 'ioredis';
import { deliveryLayout } from '../contracts/redis/chat-keys.js';
import type { AuditRecorder } from '../shared/audit/audit-log.js';
import { type ScheduleSettings, Schedules } from '../shared/schedules/schedules.js';
import { ApprovalStore } from '../shared/stores/approval-store.js';
import { TaskStore } from '../shared/stores/task-store.js';
import type { AdapterDeps } from './chat-adapter.js';
import { type ChatThrottles, EditPacer, NoticeThrottle } from './chat-throttles.js';
import { DeliveryOnce } from './delivery-once.js';
import { RateLimiter } from './rate-limiter.js';
import { rateLimitSettings } from './rate-limits.js';

/** The Redis-backed pieces the gateway hands every chat adapter, on one connection. */
export function chatServices(
  redis: Redis,
  config: Parameters<typeof rateLimitSettings>[0] & ScheduleSettings,
  options: {
    /** The rate limits' connection: a fail-fast one, so a message is refused (503) rather than held when Redis is down. */
    limitsRedis?: Redis;
    /** The rate limits' clock (tests move it past a window). */
    clock?: () => number;
    /** Records schedules made, paused, resumed and deleted. */
    audit?: AuditRecorder;
  } = {},
): Pick<AdapterDeps, 'deliveryOnce' | 'tasks' | 'throttles' | 'limits' | 'schedules' | 'approvals'> {
  const instance = config.SANDBOT_INSTANCE;
  const throttles: ChatThrottles = {
    notices: new NoticeThrottle(redis),
    editPacer: (intervalMs) => new EditPacer(intervalMs),
  };
  return {
    deliveryOnce: (platform) => new DeliveryOnce(redis, deliveryLayout(instance, platform)),
    tasks: new TaskStore(redis, instance),
    approvals: new ApprovalStore(redis, instance, options.audit),
    // Fail-fast like the rate limits: a schedule that cannot be saved is refused, not held.
    schedules: new Schedules(options.limitsRedis ?? redis, config, options.audit),
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
