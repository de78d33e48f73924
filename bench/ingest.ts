import { randomUUID } from 'node:crypto';
import { webConversationId } from '../src/contracts/conversation/id.js';
import type { InboundMessage } from '../src/contracts/protocol/inbound.js';
import { ConversationStore } from '../src/shared/queue/conversation-store.js';
import { InboundQueue } from '../src/shared/queue/inbound-queue.js';
import { createFailFastRedis } from '../src/shared/redis/connection.js';
import { dropInstanceKeys } from '../testkit/redis.js';
import { mapLimit } from './stats.js';

export interface IngestRow {
  conversations: number;
  messages: number;
  perSecond: number;
}

/**
 * Messages/s through InboundQueue.submit (store + BullMQ job), on a connection made like the gateway's,
 * with `concurrency` submits in flight and no worker consuming. Its own instance, dropped afterwards.
 */
export async function measureIngest(
  redisUrl: string,
  instance: string,
  messages: number,
  conversations: number,
  concurrency = 50,
): Promise<IngestRow> {
  const connection = createFailFastRedis(redisUrl, `${instance}-bench`);
  await new Promise<void>((resolve, reject) => connection.once('ready', resolve).once('error', reject));
  const inbound = new InboundQueue(connection, new ConversationStore(connection, instance), instance);
  const receivedAt = new Date().toISOString();
  const batch: InboundMessage[] = Array.from({ length: messages }, (_, i) => ({
    id: randomUUID(),
    conversation: webConversationId(`ingest-${i % conversations}`),
    platform: 'web',
    user: { id: 'bench' },
    text: `message ${i}`,
    receivedAt,
    route: {},
    files: [],
  }));
  try {
    const began = performance.now();
    const results = await mapLimit(batch, concurrency, (message) => inbound.submit(message));
    const seconds = (performance.now() - began) / 1000;
    if (results.some((r) => r.status !== 'queued')) throw new Error('bench: a submit was not queued');
    return { conversations, messages, perSecond: messages / seconds };
  } finally {
    await inbound.close();
    connection.disconnect();
    await dropInstanceKeys(instance);
  }
}
