import type { Redis } from 'ioredis';
import { shortHash } from '../../contracts/conversation/id.js';
import { OutboundEvent } from '../../contracts/protocol/outbound.js';
import { bullPrefix, OUTBOUND_QUEUE } from '../../contracts/redis/keys.js';
import { Queue } from '../redis/bullmq.js';

/**
 * The worker's side of the outbound queue. The job id is derived from the event's idempotency key, so
 * a retried turn that emits the same event again adds nothing while the first is kept (a day).
 */
export class OutboundQueue {
  readonly queue: Queue<OutboundEvent>;

  constructor(connection: Redis, instance: string) {
    this.queue = new Queue<OutboundEvent>(OUTBOUND_QUEUE, { connection, prefix: bullPrefix(instance) });
  }

  async publish(input: OutboundEvent): Promise<void> {
    const event = OutboundEvent.parse(input);
    await this.queue.add(event.type, event, {
      jobId: `e-${shortHash(event.id)}`,
      removeOnComplete: { age: 86_400, count: 50_000 },
      removeOnFail: { age: 7 * 86_400 },
      // Chat platforms fail for a while (429, 5xx): keep trying for about half an hour.
      attempts: 12,
      backoff: { type: 'exponential', delay: 1000 },
    });
  }

  close(): Promise<void> {
    return this.queue.close();
  }
}
