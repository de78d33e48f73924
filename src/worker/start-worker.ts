import { createDocker } from '../../sandbox/host/driver/docker-client.js';
import { sandboxDriverFromConfig } from '../../sandbox/host/driver/from-config.js';
import { describePlan, type LayerPlan, layerPlan } from '../../sandbox/host/layers/layer.js';
import { checkLayer } from '../../sandbox/host/layers/layer-check.js';
import type { Config } from '../contracts/config/schema.js';
import type { Logger } from '../contracts/log/logger.js';
import type { AuditLog } from '../shared/audit/audit-log.js';
import { ConversationStore } from '../shared/queue/conversation-store.js';
import { InboundQueue } from '../shared/queue/inbound-queue.js';
import { OutboundQueue } from '../shared/queue/outbound-queue.js';
import { createRedis } from '../shared/redis/connection.js';
import { BlobStore } from '../shared/stores/blob-store.js';
import { publishWorkerLayer } from '../shared/stores/layer-report.js';
import { Quarantine } from '../shared/stores/quarantine.js';
import { observeWorker } from './audit/worker-observability.js';
import { WorkspaceBaselines } from './audit/workspace-baselines.js';
import { ModelBroker } from './broker/model-broker.js';
import { defaultSystemPrompt } from './broker/system-prompt.js';
import { subAgentOutbound } from './delegation/delegation-outbound.js';
import { delegationFor } from './delegation/delegation-wiring.js';
import { EgressService } from './egress/egress-service.js';
import type { EgressRecord, Lookup } from './egress/proxy.js';
import { SandboxWorker } from './sandbox-worker.js';
import type { WarmPool } from './sandboxes/warm-pool.js';
import { workerSkills } from './skills/turn-skills.js';
import { Canary } from './turn/canary.js';
import { OutboxLedger } from './turn/outbox-ledger.js';

export interface RunningWorker {
  worker: SandboxWorker;
  /** This worker's audit log (e.g. for the egress proxy's net.request events). */
  audit: AuditLog;
  /** The warm pool (SANDBOX_WARM_POOL), when there is one. */
  pool?: WarmPool;
  stop(): Promise<void>;
}

export interface WorkerOverrides {
  /** Name resolution for the egress proxy (tests point names at their own hosts). */
  lookup?: Lookup;
  /** Sees every egress request record. */
  onEgress?: (entry: EgressRecord) => void;
}

/** Wires a worker from config: Redis, the Docker engine, the model broker, the egress proxy. */
export async function startWorker(
  config: Config,
  logger: Logger,
  overrides: WorkerOverrides = {},
): Promise<RunningWorker> {
  const log = logger.child({ role: 'worker' });
  const plan = layerPlan(config);
  // The warm pool's code loads only when there is a pool (SANDBOX_WARM_POOL), meanwhile.
  const warmPoolCode = config.SANDBOX_WARM_POOL > 0 ? import('./sandboxes/warm-pool.js') : undefined;
  // SANDBOX_LAYER=microvm: the guest is started (or found running) and supervised; sandboxes live in its
  // engine. The micro-VM's code loads only then.
  const guest =
    plan.engine === 'guest'
      ? await (await import('../../sandbox/host/vm/worker-guest.js')).startWorkerGuest(config, log)
      : undefined;
  // The engine at DOCKER_HOST (the host's), and the one the sandboxes live on (the guest's under microvm).
  const hostEngine = createDocker(config.DOCKER_HOST);
  const sandboxEngine = guest?.docker ?? hostEngine;
  // Before any work is taken: a worker that cannot run its layer refuses to start, saying why.
  const layer = await checkLayer(plan, {
    docker: hostEngine,
    endpoint: config.DOCKER_HOST,
    image: config.SANDBOX_IMAGE,
    instance: config.SANDBOT_INSTANCE,
    ...(guest ? { guest: (p: LayerPlan) => guest.check(p) } : {}),
  });
  if (!layer.ok) {
    await guest?.stop();
    throw new Error(
      `the sandbox layer "${layer.plan.layer}" cannot run here: ${layer.reason}${layer.fix ? ` (fix: ${layer.fix})` : ''}`,
    );
  }
  log.info({ layer: describePlan(layer.plan), detail: layer.detail }, 'sandbox layer checked');
  const poolCode = await warmPoolCode;
  const connection = createRedis(config.SANDBOT_REDIS_URL, `${config.SANDBOT_INSTANCE}-worker`);
  const store = new ConversationStore(connection, config.SANDBOT_INSTANCE);
  const outbound = new OutboundQueue(connection, config.SANDBOT_INSTANCE);
  const driver = sandboxDriverFromConfig(config, log, sandboxEngine);
  const egress = new EgressService({
    docker: hostEngine,
    redis: connection,
    instance: config.SANDBOT_INSTANCE,
    rules: config.SANDBOT_NETWORK_RULES,
    route: layer.egress,
    port: config.SANDBOT_EGRESS_PORT,
    maxBytes: config.SANDBOT_EGRESS_MAX_BYTES,
    maxSeconds: config.SANDBOT_EGRESS_MAX_SECONDS,
    maxConnections: config.SANDBOT_EGRESS_MAX_CONNECTIONS,
    maxLookups: config.SANDBOT_EGRESS_MAX_LOOKUPS,
    logger: log,
    lookup: overrides.lookup,
    extraGrants: (conversation) => skills.grantsFor(conversation),
    onRecord: (entry) => {
      worker.noteEgress(entry);
      if (entry.conversation) {
        void observed.audit.record({
          conversation: entry.conversation,
          actor: 'proxy',
          kind: 'net.request',
          data: {
            host: entry.host,
            port: entry.port,
            allowed: entry.allowed,
            ...(entry.reason ? { reason: entry.reason } : {}),
            bytes: entry.bytesIn + entry.bytesOut,
            method: entry.method,
            durationMs: entry.durationMs,
          },
        });
      }
      overrides.onEgress?.(entry);
    },
  });
  const canary = new Canary(connection, config.SANDBOT_INSTANCE);
  const broker = new ModelBroker({
    host: config.OLLAMA_HOST,
    timeoutMs: config.SANDBOT_MODEL_TIMEOUT_SECONDS * 1000,
  });
  // Workspace snapshots kept from turn to turn, and the warm pool (SANDBOX_WARM_POOL), if any.
  const baselines = new WorkspaceBaselines(connection, config.SANDBOT_INSTANCE);
  const pool = poolCode?.warmPoolFor(config, { driver, redis: connection, canary, baselines, logger: log });
  driver.usePool(pool);
  // Attach connections stay open between turns (a warm turn then makes no engine call before the model).
  driver.keepAttached(config.SANDBOX_MAX_LIVE);
  const observed = observeWorker({
    connection,
    config,
    logger: log,
    driver,
    workerId: () => worker.id,
    baselines,
  });
  // The worker submits too (a sub-agent's first message): recorded as message.received like any other.
  const inbound = new InboundQueue(connection, store, config.SANDBOT_INSTANCE, observed.audit);
  const skills = workerSkills(config, {
    // Skill volumes are mounted into sandboxes: they live on the sandboxes' engine (the guest's, under microvm).
    docker: sandboxEngine,
    redis: connection,
    audit: observed.audit,
    actor: () => `worker:${worker.id}`,
    logger: log,
  });
  const worker = new SandboxWorker(
    {
      connection,
      store,
      inbound,
      driver,
      broker,
      // A sub-agent's result goes to its parent (in Redis) and its progress to the parent's thread.
      publish: observed.counted(
        subAgentOutbound(connection, config.SANDBOT_INSTANCE, (event) => outbound.publish(event)),
      ),
      observe: observed.observe,
      networkFor: (conversation) => egress.networkFor(conversation),
      quarantine: new Quarantine(connection, config.SANDBOT_INSTANCE),
      audit: observed.audit,
      ...(pool ? { pool } : {}),
      canaryFor: (conversation) => canary.token(conversation),
      skillsFor: (conversation, turnId) => skills.forTurn(conversation, turnId),
      tripwire: (conversation, reason) => worker.tripwire(conversation, reason),
      hostTools: delegationFor(config, {
        connection,
        driver,
        inbound,
        egress,
        audit: observed.audit,
        canaryFor: (conversation) => canary.token(conversation),
        tripwire: (conversation, reason) => worker.tripwire(conversation, reason),
        logger: log,
        actor: () => `worker:${worker.id}`,
      }),
      logger: log,
      systemPrompt: defaultSystemPrompt(),
      blobs: new BlobStore(connection, config.SANDBOT_INSTANCE),
      ledger: new OutboxLedger(connection, config.SANDBOT_INSTANCE),
      config,
    },
    {
      instance: config.SANDBOT_INSTANCE,
      concurrency: config.SANDBOT_WORKER_CONCURRENCY,
      leaseSeconds: config.SANDBOT_TURN_LEASE_SECONDS,
      idleSeconds: config.SANDBOX_IDLE_SECONDS,
      egressRefusalTripwire: config.SANDBOT_TRIPWIRE_EGRESS_REFUSALS,
      maxLive: config.SANDBOX_MAX_LIVE,
      ephemeral: config.SANDBOT_EPHEMERAL,
      taskLimits: { perUser: config.SANDBOT_TASKS_PER_USER, perChannel: config.SANDBOT_TASKS_PER_CHANNEL },
    },
  );
  const unpublishLayer = publishWorkerLayer(
    connection,
    config.SANDBOT_INSTANCE,
    worker.id,
    {
      layer: layer.plan.layer,
      ...(layer.plan.runtime ? { runtime: layer.plan.runtime } : {}),
      detail: layer.detail,
      egress: layer.egress,
    },
    () => sandboxEngine.ping(),
  );
  worker.start();
  // Fills in the background: the worker takes messages at once (new conversations start cold meanwhile).
  pool?.start().catch((error: unknown) => log.warn({ err: error }, 'warm pool did not start'));
  log.info({ id: worker.id, concurrency: config.SANDBOT_WORKER_CONCURRENCY }, 'worker started');
  return {
    worker,
    audit: observed.audit,
    ...(pool ? { pool } : {}),
    async stop() {
      await worker.stop();
      await pool?.stop();
      driver.dropAttached();
      await unpublishLayer();
      await observed.stop();
      await egress.stop();
      await guest?.stop();
      await Promise.all([inbound.close(), outbound.close()]);
      connection.disconnect();
    },
  };
}
