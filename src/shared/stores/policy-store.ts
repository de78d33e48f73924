import type { Redis } from 'ioredis';
import { z } from 'zod';
import { type ConversationId, conversationKey } from '../../contracts/conversation/id.js';
import { Grant, grantsFromRules, type NetworkRules } from '../../contracts/policy/network-policy.js';

const Override = z.object({ grants: z.array(Grant), by: z.string(), at: z.string() });

/**
 * A conversation's network grants: an admin's override (`network allow` / `network off`, kept in Redis)
 * or else the config rules. Default: nothing.
 */
export class NetworkPolicyStore {
  constructor(
    private readonly redis: Redis,
    private readonly instance: string,
    private readonly rules: NetworkRules,
  ) {}

  private key(conversation: ConversationId): string {
    return `${this.instance}:conv:${conversationKey(conversation)}:network`;
  }

  async grantsFor(conversation: ConversationId): Promise<Grant[]> {
    const raw = await this.redis.get(this.key(conversation));
    const override = raw === null ? undefined : Override.safeParse(JSON.parse(raw));
    if (override?.success) return override.data.grants;
    return grantsFromRules(this.rules, conversation);
  }

  /** Adds hosts to the conversation's grants (on top of what it has now). */
  async allow(conversation: ConversationId, grants: Grant[], by: string): Promise<Grant[]> {
    const next = [...new Set([...(await this.grantsFor(conversation)), ...grants])];
    await this.redis.set(
      this.key(conversation),
      JSON.stringify({ grants: next, by, at: new Date().toISOString() }),
    );
    return next;
  }

  /** No network for this conversation, whatever the config says. */
  async off(conversation: ConversationId, by: string): Promise<void> {
    await this.redis.set(
      this.key(conversation),
      JSON.stringify({ grants: [], by, at: new Date().toISOString() }),
    );
  }
}
