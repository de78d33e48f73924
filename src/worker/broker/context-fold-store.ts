import type { Redis } from 'ioredis';
import type { ConversationId } from '../../contracts/conversation/id.js';
import { ConversationValueStore } from '../../shared/stores/conversation-value.js';
import { ContextFold } from './context-fold.js';

/** A fold not touched for this long is let go (it no longer matches any history the sandbox sends). */
const FOLD_TTL_SECONDS = 90 * 86_400;

/** Each conversation's fold (context-fold.ts), beside its history. */
export class ContextFoldStore extends ConversationValueStore {
  constructor(redis: Redis, instance: string) {
    super(redis, instance, 'contextFold');
  }

  /** The stored fold; undefined when there is none, or it is unreadable (the requests then refold). */
  async get(conversation: ConversationId): Promise<ContextFold | undefined> {
    try {
      const read = await this.readJson(conversation, ContextFold);
      return read?.success ? read.data : undefined;
    } catch {
      return undefined;
    }
  }

  async clear(conversation: ConversationId): Promise<void> {
    await this.redis.del(this.key(conversation));
  }

  async set(conversation: ConversationId, fold: ContextFold): Promise<void> {
    await this.redis.set(this.key(conversation), JSON.stringify(fold), 'EX', FOLD_TTL_SECONDS);
  }
}
