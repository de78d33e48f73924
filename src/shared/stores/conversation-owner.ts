import type { Redis } from 'ioredis';
import type { ConversationId } from '../../contracts/conversation/id.js';
import { ConversationValueStore } from './conversation-value.js';

/** A person as the owner key stores them: `<platform>:<user id>`, e.g. `slack:U0123`. */
export type Person = `${'web' | 'slack' | 'discord'}:${string}`;

/**
 * Who started each conversation: the writer of its first message (not a command), recorded once by the
 * inbound queue. Chat commands that act on a conversation obey its owner and admins only.
 */
export class ConversationOwners extends ConversationValueStore {
  constructor(redis: Redis, instance: string) {
    super(redis, instance, 'owner');
  }

  /** Records the owner unless one is recorded (NX): the first writer stays the owner. */
  async claim(conversation: ConversationId, owner: Person): Promise<void> {
    await this.redis.set(this.key(conversation), owner, 'NX');
  }

  async get(conversation: ConversationId): Promise<Person | undefined> {
    return ((await this.redis.get(this.key(conversation))) ?? undefined) as Person | undefined;
  }
}
