import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { AuditActor } from '../../contracts/audit/events.js';
import type { Config } from '../../contracts/config/schema.js';
import { ConversationId } from '../../contracts/conversation/id.js';
import type { Grant } from '../../contracts/policy/network-policy.js';
import { instanceKeys } from '../../contracts/redis/keys.js';
import type { AuditRecorder } from '../audit/audit-log.js';
import type { ActivitySummary } from '../audit/summary.js';
import { ConversationOwners, type Person } from '../stores/conversation-owner.js';
import { NetworkPolicyStore } from '../stores/policy-store.js';
import { Quarantine } from '../stores/quarantine.js';
import type { ConversationStore } from './conversation-store.js';
import { SkillCommandClient, type SkillCommands } from './skill-commands.js';

/** A control message from a gateway to the workers, on a Redis channel. */
export const ControlMessage = z.discriminatedUnion('action', [
  z.object({ action: z.literal('stop'), conversation: ConversationId, by: z.string().max(256) }),
  z.object({
    action: z.literal('kill'),
    conversation: ConversationId,
    by: z.string().max(256),
    reason: z.string().max(1000),
  }),
]);
export type ControlMessage = z.infer<typeof ControlMessage>;

export interface ConversationStatus {
  conversation: ConversationId;
  /** A worker is running a turn of this conversation now. */
  turnRunning: boolean;
  /** Messages waiting for a turn (including the running one's). */
  pending: number;
  /** When the last turn finished, if any (ISO time). */
  lastTurnAt?: string;
  /** Recent activity from the audit log (tools used, files changed, network requests), when there is any. */
  activity?: ActivitySummary;
}

/**
 * What chat commands (`status`, `stop`) ask of the queue, from any gateway. `reset` is not here: it is
 * submitted as a message with `command: 'reset'`, so it runs in order with the conversation's messages.
 */
export class ConversationControl {
  constructor(
    private readonly redis: Redis,
    private readonly store: ConversationStore,
    private readonly instance: string,
    private readonly quarantine: Quarantine,
    /** Network grants (`network allow` / `network off`); take effect from the conversation's next turn. */
    readonly network: NetworkPolicyStore,
    /** Records kills, releases and policy changes (absent: logged by the caller only). */
    private readonly audit?: AuditRecorder,
  ) {
    this.owners = new ConversationOwners(redis, instance);
  }

  /** Who started the conversation, when its first message recorded it. */
  owner(conversation: ConversationId): Promise<Person | undefined> {
    return this.owners.get(conversation);
  }

  /** Grants hosts to a conversation (from its next turn on), recorded with who did it. */
  async allowNetwork(conversation: ConversationId, grants: Grant[], by: AuditActor): Promise<Grant[]> {
    const now = await this.network.allow(conversation, grants, by);
    await this.audit?.record({
      conversation,
      actor: by,
      kind: 'policy.change',
      data: { policy: 'network', grants: now },
    });
    return now;
  }

  /** Takes one granted host away (from the next turn on), recorded with who did it. False when not granted. */
  async revokeNetwork(conversation: ConversationId, host: Grant, by: AuditActor): Promise<boolean> {
    if (!(await this.network.revoke(conversation, host, by))) return false;
    await this.audit?.record({
      conversation,
      actor: by,
      kind: 'policy.change',
      data: { policy: 'network', revoked: host, grants: await this.network.grantsFor(conversation) },
    });
    return true;
  }

  /** No network for a conversation (from its next turn on), recorded with who did it. */
  async networkOff(conversation: ConversationId, by: AuditActor): Promise<void> {
    await this.network.off(conversation, by);
    await this.audit?.record({
      conversation,
      actor: by,
      kind: 'policy.change',
      data: { policy: 'network', grants: [] },
    });
  }

  /**
   * Skills enabled in a conversation (`skill enable|disable`, `skills`), carried out by a worker;
   * absent without a skills folder.
   */
  skills?: SkillCommands;

  private readonly owners: ConversationOwners;

  /** Reads a conversation's recent activity from the audit log (set by the gateway). */
  activity?: (conversation: ConversationId) => Promise<ActivitySummary | undefined>;

  async status(conversation: ConversationId): Promise<ConversationStatus> {
    const [holder, pending, last, activity] = await Promise.all([
      this.store.leaseHolder(conversation),
      this.store.pendingCount(conversation),
      this.redis.zscore(instanceKeys(this.instance).lastUsed, conversation),
      this.activity?.(conversation).catch(() => undefined),
    ]);
    return {
      conversation,
      turnRunning: holder !== null,
      pending,
      ...(last === null ? {} : { lastTurnAt: new Date(Number(last)).toISOString() }),
      ...(activity ? { activity } : {}),
    };
  }

  /**
   * Kills the conversation's sandbox at once (SIGKILL, by whichever worker's engine has it) and
   * quarantines the conversation until an admin releases it.
   */
  async kill(conversation: ConversationId, by: AuditActor, reason: string): Promise<void> {
    await this.quarantine.put(conversation, reason, by);
    await this.audit?.record({ conversation, actor: by, kind: 'sandbox.quarantine', data: { reason } });
    const message: ControlMessage = { action: 'kill', conversation, by, reason };
    await this.redis.publish(instanceKeys(this.instance).control, JSON.stringify(message));
  }

  /** Lets a quarantined conversation run again. False when it was not quarantined. */
  async release(conversation: ConversationId, by: AuditActor): Promise<boolean> {
    const released = await this.quarantine.release(conversation);
    if (released) await this.audit?.record({ conversation, actor: by, kind: 'sandbox.release', data: {} });
    return released;
  }

  quarantined(conversation: ConversationId) {
    return this.quarantine.get(conversation);
  }

  /** Asks the worker running this conversation to cancel its turn. False when no turn is running. */
  async stop(conversation: ConversationId, by: string): Promise<boolean> {
    if ((await this.store.leaseHolder(conversation)) === null) return false;
    const message: ControlMessage = { action: 'stop', conversation, by };
    await this.redis.publish(instanceKeys(this.instance).control, JSON.stringify(message));
    return true;
  }
}

/** The control for an instance, with its quarantine and network policy. */
export function createConversationControl(
  redis: Redis,
  store: ConversationStore,
  config: Pick<Config, 'SANDBOT_INSTANCE' | 'SANDBOT_NETWORK_RULES'> &
    Partial<Pick<Config, 'SANDBOT_SKILLS_DIR'>>,
  audit?: AuditRecorder,
): ConversationControl {
  const control = new ConversationControl(
    redis,
    store,
    config.SANDBOT_INSTANCE,
    new Quarantine(redis, config.SANDBOT_INSTANCE),
    new NetworkPolicyStore(redis, config.SANDBOT_INSTANCE, config.SANDBOT_NETWORK_RULES),
    audit,
  );
  if (config.SANDBOT_SKILLS_DIR) {
    control.skills = new SkillCommandClient(redis, config.SANDBOT_INSTANCE);
  }
  return control;
}
