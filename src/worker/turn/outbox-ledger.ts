import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { ConversationId } from '../../contracts/conversation/id.js';
import { ConversationValueStore } from '../../shared/stores/conversation-value.js';

/**
 * What each conversation's outbox last handed back (file name → content hash), so a reply carries only
 * files that are new or changed: the archive API's modification times have whole-second precision.
 */
export class OutboxLedger extends ConversationValueStore {
  constructor(redis: Redis, instance: string) {
    super(redis, instance, 'outbox');
  }

  /** Keeps the files whose content differs from what was handed back before, and records them. */
  async takeChanged<T extends { name: string; bytes: Buffer }>(
    conversation: ConversationId,
    files: T[],
  ): Promise<T[]> {
    if (files.length === 0) return [];
    const key = this.key(conversation);
    const known = await this.redis.hmget(key, ...files.map((f) => f.name));
    const changed: T[] = [];
    const updates: string[] = [];
    files.forEach((file, i) => {
      const hash = createHash('sha256').update(file.bytes).digest('hex');
      if (known[i] === hash) return;
      changed.push(file);
      updates.push(file.name, hash);
    });
    if (updates.length > 0) await this.redis.hset(key, ...updates);
    return changed;
  }

  /** Forgets everything (the workspace was wiped). */
  async clear(conversation: ConversationId): Promise<void> {
    await this.redis.del(this.key(conversation));
  }
}
