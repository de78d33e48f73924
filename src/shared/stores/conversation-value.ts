import type { Redis } from 'ioredis';
import type { z } from 'zod';
import type { ConversationId } from '../../contracts/conversation/id.js';
import { type ConversationKeyName, conversationKeys } from '../../contracts/redis/keys.js';

/**
 * The base of the stores that keep one value per conversation in Redis (its network grants, quarantine,
 * skills, outbox ledger, canary, workspace mark, owner): each names its key in `conversationKeys` once, and
 * JSON values are read and written the same way everywhere.
 */
export abstract class ConversationValueStore {
  protected constructor(
    protected readonly redis: Redis,
    protected readonly instance: string,
    private readonly keyName: ConversationKeyName,
  ) {}

  protected key(conversation: ConversationId): string {
    return conversationKeys(this.instance, conversation)[this.keyName];
  }

  /** The stored JSON checked against `schema`; undefined when nothing is stored (bad JSON throws). */
  protected async readJson<T extends z.ZodType>(
    conversation: ConversationId,
    schema: T,
  ): Promise<z.ZodSafeParseResult<z.output<T>> | undefined> {
    const raw = await this.redis.get(this.key(conversation));
    return raw === null ? undefined : schema.safeParse(JSON.parse(raw));
  }

  protected async writeJson(conversation: ConversationId, value: unknown): Promise<void> {
    await this.redis.set(this.key(conversation), JSON.stringify(value));
  }
}
