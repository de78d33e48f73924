import type { Redis } from 'ioredis';
import type { ConversationId } from '../../src/contracts/conversation/id.js';
import { ConversationStore } from '../../src/shared/queue/conversation-store.js';

/**
 * Waits until a conversation has no turn running and nothing pending. A reply is published before its
 * turn's bookkeeping (the after-turn snapshot) ends, so a test that looks at the turn's end (status,
 * idle stops, task state) right after the reply waits for this first.
 */
export async function turnsSettled(
  redis: Redis,
  instance: string,
  conversation: ConversationId,
  timeoutMs = 15_000,
): Promise<void> {
  const store = new ConversationStore(redis, instance);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [holder, pending] = await Promise.all([
      store.leaseHolder(conversation),
      store.pendingCount(conversation),
    ]);
    if (holder === null && pending === 0) return;
    if (Date.now() > deadline) throw new Error(`${conversation} still busy after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
