import type { Redis } from 'ioredis';
import { InboundMessage } from '../../src/contracts/protocol/inbound.js';
import { conversationKeys } from '../../src/contracts/redis/keys.js';
import type { InboundQueue } from '../../src/shared/queue/inbound-queue.js';

/**
 * The messages announced on the inbound queue, oldest first, as their conversations' stores hold them
 * (a job names its conversation and sequence number; the message itself waits in the store).
 */
export async function queuedMessages(
  inbound: InboundQueue,
  redis: Redis,
  instance: string,
): Promise<InboundMessage[]> {
  const jobs = await inbound.queue.getJobs(['waiting', 'delayed', 'active', 'completed', 'prioritized']);
  const announced = jobs
    .filter((job) => job.data.kind === 'message')
    .sort((a, b) => a.timestamp - b.timestamp || Number(a.id?.localeCompare(b.id ?? '')));
  const messages: InboundMessage[] = [];
  for (const job of announced) {
    if (job.data.kind !== 'message') continue;
    const keys = conversationKeys(instance, job.data.conversation);
    const [id] = await redis.zrangebyscore(keys.pending, job.data.seq, job.data.seq);
    const raw = id === undefined ? null : await redis.hget(keys.messages, id);
    if (raw !== null) messages.push(InboundMessage.parse(JSON.parse(raw)));
  }
  return messages;
}
