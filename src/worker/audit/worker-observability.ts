import type { Redis } from 'ioredis';
import type { SandboxInfo, SandboxLifecycleEvent } from '../../../sandbox/host/driver/types.js';
import type { WorkspaceSnapshot } from '../../../sandbox/host/driver/workspace-snapshot.js';
import type { AuditActor } from '../../contracts/audit/events.js';
import type { Config } from '../../contracts/config/schema.js';
import type { ConversationId } from '../../contracts/conversation/id.js';
import type { Logger } from '../../contracts/log/logger.js';
import type { OutboundEvent } from '../../contracts/protocol/outbound.js';
import { AuditLog, type AuditSettings } from '../../shared/audit/audit-log.js';
import { sandbotMetrics } from '../../shared/metrics.js';
import type { Turn } from '../../shared/queue/conversation-store.js';
import { type TrailMode, type TurnTrail, turnTrails } from './turn-trail.js';
import type { WorkspaceBaselines } from './workspace-baselines.js';

/** What the worker's observability needs of its sandbox driver. */
export interface ObservedDriver {
  list(): Promise<SandboxInfo[]>;
  snapshotWorkspace(conversation: ConversationId): Promise<WorkspaceSnapshot>;
  onLifecycle(listener: (event: SandboxLifecycleEvent) => void): () => void;
}

export interface WorkerObservability {
  audit: AuditLog;
  /** For TurnRunnerDeps.observe. */
  observe: (turn: Turn, mode: TrailMode) => TurnTrail;
  /** Wraps the outbound publish to count messages out. */
  counted(publish: (event: OutboundEvent) => Promise<void>): (event: OutboundEvent) => Promise<void>;
  stop(): Promise<void>;
}

/** The audit log, turn trails, sandbox lifecycle events and worker metrics, wired for one worker. */
export function observeWorker(options: {
  connection: Redis;
  config: AuditSettings & Pick<Config, 'SANDBOT_INSTANCE'>;
  logger: Logger;
  driver: ObservedDriver;
  /** The worker's id (known once it is constructed). */
  workerId: () => string;
  /** Workspace snapshots kept from turn to turn (see WorkspaceBaselines). */
  baselines?: WorkspaceBaselines;
}): WorkerObservability {
  const { config, driver, logger } = options;
  const metrics = sandbotMetrics();
  const audit = new AuditLog(options.connection, config, logger);
  audit.start();
  const actor = (): AuditActor => `worker:${options.workerId()}`;
  const unsubscribe = driver.onLifecycle((event) => {
    const { action, conversation, ...data } = event;
    if (event.action === 'start') {
      metrics.sandboxStart.observe({ start: event.cold ? 'cold' : 'warm' }, event.ms / 1000);
      Object.assign(data, { ms: Math.round(event.ms) });
    }
    void audit.record({ conversation, actor: actor(), kind: `sandbox.${action}`, data });
  });
  const unregister = metrics.source('liveSandboxes', config.SANDBOT_INSTANCE, async () => {
    return (await driver.list()).filter((s) => s.state === 'running').length;
  });
  return {
    audit,
    observe: turnTrails({
      audit,
      snapshot: (conversation) => driver.snapshotWorkspace(conversation),
      ...(options.baselines ? { baselines: options.baselines } : {}),
      actor,
      logger,
    }),
    counted: (publish) => async (event) => {
      await publish(event);
      metrics.messagesOut.inc({ platform: event.platform, type: event.type });
    },
    async stop() {
      unsubscribe();
      unregister();
      await audit.stop();
    },
  };
}
