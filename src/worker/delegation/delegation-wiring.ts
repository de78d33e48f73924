import type { Redis } from 'ioredis';
import type { SandboxDriver } from '../../../sandbox/host/driver/types.js';
import type { AuditActor } from '../../contracts/audit/events.js';
import type { Config } from '../../contracts/config/schema.js';
import type { ConversationId } from '../../contracts/conversation/id.js';
import type { Logger } from '../../contracts/log/logger.js';
import { instanceKeys } from '../../contracts/redis/keys.js';
import type { AuditRecorder } from '../../shared/audit/audit-log.js';
import type { ControlMessage } from '../../shared/queue/conversation-control.js';
import type { InboundQueue } from '../../shared/queue/inbound-queue.js';
import { BlobStore } from '../../shared/stores/blob-store.js';
import type { EgressService } from '../egress/egress-service.js';
import { Delegation } from './delegation.js';

/** The `delegate` host tool of a worker, wired from config and the worker's parts. */
export function delegationFor(
  config: Config,
  parts: {
    connection: Redis;
    driver: SandboxDriver;
    inbound: InboundQueue;
    egress: Pick<EgressService, 'policy' | 'grantsFor'>;
    audit?: AuditRecorder;
    canaryFor?(conversation: ConversationId): Promise<string>;
    tripwire?(conversation: ConversationId, reason: string): void;
    logger: Logger;
    actor(): AuditActor;
    /** Extra sub-agents approvals gave a conversation. */
    extraSubAgents?(conversation: ConversationId): Promise<number>;
  },
): Delegation {
  const instance = config.SANDBOT_INSTANCE;
  return new Delegation({
    driver: parts.driver,
    blobs: new BlobStore(parts.connection, instance),
    tasks: parts.inbound.tasks.store,
    network: parts.egress.policy,
    grantsOf: (conversation) => parts.egress.grantsFor(conversation),
    redis: parts.connection,
    submit: (message) => parts.inbound.submit(message),
    stop: async (conversation: ConversationId, by: string) => {
      const message: ControlMessage = { action: 'stop', conversation, by: by.slice(0, 256) };
      await parts.connection.publish(instanceKeys(instance).control, JSON.stringify(message));
    },
    ...(parts.audit ? { audit: parts.audit } : {}),
    ...(parts.canaryFor ? { canaryFor: parts.canaryFor } : {}),
    ...(parts.tripwire ? { tripwire: parts.tripwire } : {}),
    logger: parts.logger,
    instance,
    actor: parts.actor,
    ...(parts.extraSubAgents ? { extraSubAgents: parts.extraSubAgents } : {}),
    limits: {
      maxDepth: config.SANDBOT_DELEGATE_MAX_DEPTH,
      maxFanout: config.SANDBOT_DELEGATE_MAX_FANOUT,
      maxSandboxes: config.SANDBOT_DELEGATE_MAX_SANDBOXES,
      maxSeconds: config.SANDBOT_DELEGATE_MAX_SECONDS,
      concurrency: config.SANDBOT_WORKER_CONCURRENCY,
      maxLive: config.SANDBOX_MAX_LIVE,
      fileMaxBytes: config.SANDBOT_FILE_MAX_BYTES,
    },
  });
}
