import type { Redis } from 'ioredis';
import { deliveryLayout } from '../contracts/redis/chat-keys.js';
import { TaskStore } from '../shared/stores/task-store.js';
import type { AdapterDeps } from './chat-adapter.js';
import { type ChatThrottles, EditPacer, NoticeThrottle } from './chat-throttles.js';
import { DeliveryOnce } from './delivery-once.js';

/** The Redis-backed pieces the gateway hands every chat adapter, on one connection. */
export function chatServices(
  redis: Redis,
  instance: string,
): Pick<AdapterDeps, 'deliveryOnce' | 'tasks' | 'throttles'> {
  const throttles: ChatThrottles = {
    notices: new NoticeThrottle(redis),
    editPacer: (intervalMs) => new EditPacer(intervalMs),
  };
  return {
    deliveryOnce: (platform) => new DeliveryOnce(redis, deliveryLayout(instance, platform)),
    tasks: new TaskStore(redis, instance),
    throttles,
  };
}
