import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { ConversationId } from '../../contracts/conversation/id.js';
import { ConversationValueStore } from './conversation-value.js';

export const QuarantineRecord = z.object({ reason: z.string(), by: z.string(), at: z.string() });
export type QuarantineRecord = z.infer<typeof QuarantineRecord>;

/**
 * Conversations taken out of service by a kill (an admin's, or a tripwire's): no turn runs until an
 * admin releases them. Kept in Redis so every worker and gateway sees it.
 */
export class Quarantine extends ConversationValueStore {
  constructor(redis: Redis, instance: string) {
    super(redis, instance, 'quarantine');
  }

  async put(conversation: ConversationId, reason: string, by: string): Promise<QuarantineRecord> {
    const record = { reason, by, at: new Date().toISOString() };
    await this.writeJson(conversation, record);
    return record;
  }

  async get(conversation: ConversationId): Promise<QuarantineRecord | undefined> {
    const parsed = await this.readJson(conversation, QuarantineRecord);
    if (parsed === undefined) return undefined;
    // An unreadable record still quarantines: fail closed.
    return parsed.success ? parsed.data : { reason: 'unreadable quarantine record', by: 'unknown', at: '' };
  }

  /** True when it was quarantined. */
  async release(conversation: ConversationId): Promise<boolean> {
    return (await this.redis.del(this.key(conversation))) === 1;
  }
}

/** What the user reads when a turn is refused for a quarantined conversation. */
export function quarantineNotice(record: QuarantineRecord): string {
  return `This conversation is quarantined (${record.reason}; by ${record.by}${record.at ? ` at ${record.at}` : ''}). An admin must release it before it runs again.`;
}
