import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { ConversationId } from '../../contracts/conversation/id.js';
import { Grant, grantsFromRules, type NetworkRules } from '../../contracts/policy/network-policy.js';
import { ConversationValueStore } from './conversation-value.js';

const Override = z.object({ grants: z.array(Grant), by: z.string(), at: z.string() });

/**
 * A conversation's network grants: an admin's override (`network allow` / `network off`, kept in Redis)
 * or else the config rules. Default: nothing.
 */
export class NetworkPolicyStore extends ConversationValueStore {
  constructor(
    redis: Redis,
    instance: string,
    private readonly rules: NetworkRules,
  ) {
    super(redis, instance, 'network');
  }

  async grantsFor(conversation: ConversationId): Promise<Grant[]> {
    const override = await this.readJson(conversation, Override);
    if (override?.success) return override.data.grants;
    return grantsFromRules(this.rules, conversation);
  }

  /** Adds hosts to the conversation's grants (on top of what it has now). */
  async allow(conversation: ConversationId, grants: Grant[], by: string): Promise<Grant[]> {
    const next = [...new Set([...(await this.grantsFor(conversation)), ...grants])];
    await this.writeJson(conversation, { grants: next, by, at: new Date().toISOString() });
    return next;
  }

  /** Takes one host off the conversation's grants (the rest stay). False when it had no such grant. */
  async revoke(conversation: ConversationId, host: Grant, by: string): Promise<boolean> {
    const now = await this.grantsFor(conversation);
    if (!now.includes(host)) return false;
    const next = now.filter((g) => g !== host);
    await this.writeJson(conversation, { grants: next, by, at: new Date().toISOString() });
    return true;
  }

  /** No network for this conversation, whatever the config says. */
  async off(conversation: ConversationId, by: string): Promise<void> {
    await this.writeJson(conversation, { grants: [], by, at: new Date().toISOString() });
  }
}
