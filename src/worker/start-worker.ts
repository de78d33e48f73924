import { requireDiskCaps } from '../../sandbox/host/driver/disk-cap.js';
import type { DockerSandboxDriver } from '../../sandbox/host/driver/docker-driver.js';
import { sandboxDriverFromConfig } from '../../sandbox/host/driver/from-config.js';
import { resolveLayerOrThrow } from '../../sandbox/host/layers/layer-probe.js';
import type { Config } from '../contracts/config/schema.js';
import type { Logger } from '../contracts/log/logger.js';
import type { AuditLog } from '../shared/audit/audit-log.js';
import { ConversationStore } from '../shared/queue/conversation-store.js';
import { InboundQueue } from '../shared/queue/inbound-queue.js';
import { OutboundQueue } from '../shared/queue/outbound-queue.js';
import { createRedis } from '../shared/redis/connection.js';
import { Schedules } from '../shared/schedules/schedules.js';
import { Quarantine } from '../shared/stores/quarantine.js';
import { observeWorker } from './audit/worker-observability.js';
import { WorkspaceBaselines } from './audit/workspace-baselines.js';
import { modelBrokerFor, modelServerUrl } from './broker/model-broker.js';
import { EgressService, type SkillGrants } from './egress/egress-service.js';
import type { EgressRecord, Lookup } from './egress/proxy.js';
import { reportWorkerHealth } from './health-report.js';
import { startWorkerHost } from './hosts/host-wiring.js';
import { SandboxWorker } from './sandbox-worker.js';
import { reportSandboxStats } from './sandboxes/sandbox-stats.js';
import type { WarmPool } from './sandboxes/warm-pool.js';
import { ScheduleRunner } from './schedules/schedule-runner.js';
import { openSkillStore } from './skills/open-store.js';
import { pendingSkills } from './skills/pending-skills.js';
import { serveChatSkillCommands } from './skills/skill-control.js';
import { workerSkills } from './skills/turn-skills.js';
import { Canary } from './turn/canary.js';
import {
  type CheckedLayer,
  checkedSandboxLayer,
  layerReport,
  netRequestEvent,
  routedBroker,
  sandboxWorkerDeps,
  type WorkerParts,
  workerOptions,
} from './worker-wiring.js';

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
  settings: Config,
  logger: Logger,
  overrides: WorkerOverrides = {},
): Promise<RunningWorker> {
  const log = logger.child({ role: 'worker' });
  // SANDBOX_LAYER=auto becomes one layer here, once: everything below sees that one.
  const { config, choice, described } = await resolveLayerOrThrow(settings);
  // Before anything starts: every sandbox's disk is capped, or the operator said 0 (a logged weakness).
  const disk = requireDiskCaps(config, log);
  // The warm pool's code loads only when there is a pool (SANDBOX_WARM_POOL), meanwhile.
  const warmPoolCode = config.SANDBOX_WARM_POOL > 0 ? import('./sandboxes/warm-pool.js') : undefined;
  const layer = await checkedSandboxLayer(config, log, choice.auto ? described : undefined);
  const poolCode = await warmPoolCode;
  const { parts, driver, worker } = wireWorker(config, log, layer, overrides, poolCode?.warmPoolFor);
  const { connection, observed, pool } = parts;
  // Before the worker takes work: a gateway's /readyz counts it from its first report.
  const report = await reportWorkerHealth({
    redis: connection,
    config,
    workerId: worker.id,
    layer: layerReport(layer.verdict, { setting: settings.SANDBOX_LAYER, reason: choice.reason }),
    hostEngine: layer.hostEngine,
    sandboxEngine: layer.sandboxEngine,
    ...(disk.ok ? { disk: { detail: disk.detail } } : {}),
  });
  // Its engine's ID names this host: conversations are homed on it (src/worker/hosts).
  const host = await startWorkerHost(config, hostParts(parts, layer, driver), worker.id, log);
  worker.useHost(host.gate);
  worker.start();
  parts.schedules?.start(connection);
  const skillCommands = serveChatSkillCommands(config, {
    redis: connection,
    audit: observed.audit,
    logger: log,
  });
  // For the operator console: this worker's sandboxes with CPU, memory and disk, and skills to approve.
  const stats = reportSandboxStats({
    redis: connection,
    instance: config.SANDBOT_INSTANCE,
    workerId: worker.id,
    engine: layer.sandboxEngine,
    list: () => driver.list(),
    ...(disk.ok && disk.capped && config.SANDBOX_LAYER !== 'microvm'
      ? { diskRoot: config.SANDBOX_DISK_DIR }
      : {}),
    pendingSkills: () => pendingSkills(openSkillStore(config)),
    logger: log,
  });
  // Fills in the background: the worker takes messages at once (new conversations start cold meanwhile).
  pool?.start().catch((error: unknown) => log.warn({ err: error }, 'warm pool did not start'));
  log.info({ id: worker.id, concurrency: config.SANDBOT_WORKER_CONCURRENCY }, 'worker started');
  return {
    worker,
    audit: observed.audit,
    ...(pool ? { pool } : {}),
    async stop() {
      // First: a turn's snapshot, outbox read or delegation copy in flight is cut, not waited on.
      driver.closeReads();
      await skillCommands.stop();
      await stats.stop();
      await parts.schedules?.stop();
      await worker.stop();
      await host.stop();
      await pool?.stop();
      driver.dropAttached();
      await report.stop();
      await observed.stop();
      await parts.egress.stop();
      await layer.guest?.stop();
      await Promise.all([parts.inbound.close(), parts.outbound.close()]);
      connection.disconnect();
    },
  };
}

function hostParts(parts: WorkerParts, layer: CheckedLayer, driver: DockerSandboxDriver) {
  return {
    ...{ engine: layer.sandboxEngine, driver, redis: parts.connection, store: parts.store },
    publish: (event: Parameters<WorkerParts['outbound']['publish']>[0]) => parts.outbound.publish(event),
    audit: parts.observed.audit,
    // Under the micro-VM only its worker reaches the guest's engine: no drain from outside.
    reachable: !layer.guest,
  };
}

type WarmPoolFor = typeof import('./sandboxes/warm-pool.js').warmPoolFor;

/** Redis, the driver, the egress proxy, the broker, the pool, the audit log and skills, and the worker. */
function wireWorker(
  config: Config,
  log: Logger,
  layer: CheckedLayer,
  overrides: WorkerOverrides,
  warmPoolFor: WarmPoolFor | undefined,
): { parts: WorkerParts; driver: DockerSandboxDriver; worker: SandboxWorker } {
  const connection = createRedis(config.SANDBOT_REDIS_URL, `${config.SANDBOT_INSTANCE}-worker`);
  const store = new ConversationStore(connection, config.SANDBOT_INSTANCE);
  const outbound = new OutboundQueue(connection, config.SANDBOT_INSTANCE);
  const driver = sandboxDriverFromConfig(config, log, layer.sandboxEngine);
  const egress = egressService(config, log, layer, connection, overrides, {
    grants: {
      all: (conversation) => skills.grantsFor(conversation),
      of: (conversation, skill) => skills.hostsOf(conversation, skill),
    },
    onRecord: (entry) => {
      worker.noteEgress(entry);
      const event = netRequestEvent(entry);
      if (event) void observed.audit.record(event);
      overrides.onEgress?.(entry);
    },
  });
  const canary = new Canary(connection, config.SANDBOT_INSTANCE);
  const models = modelBrokerFor(config, config.SANDBOT_MODEL_TIMEOUT_SECONDS * 1000);
  const broker = routedBroker(config, connection, models, modelServerUrl(config), log);
  // Workspace snapshots kept from turn to turn, and the warm pool (SANDBOX_WARM_POOL), if any.
  const baselines = new WorkspaceBaselines(connection, config.SANDBOT_INSTANCE);
  const pool = warmPoolFor?.(config, { driver, redis: connection, canary, baselines, logger: log });
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
    docker: layer.sandboxEngine,
    redis: connection,
    audit: observed.audit,
    actor: () => `worker:${worker.id}`,
    logger: log,
  });
  const parts: WorkerParts = {
    ...{ connection, store, inbound, outbound, driver, broker, egress, canary, skills, observed },
    ...(pool ? { pool } : {}),
    schedules: scheduleRunner(config, log, { connection, inbound, outbound, observed }, () => worker.id),
  };
  const worker: SandboxWorker = new SandboxWorker(
    sandboxWorkerDeps(config, log, parts, () => worker),
    workerOptions(config),
  );
  return { parts, driver, worker };
}

function egressService(
  config: Config,
  log: Logger,
  layer: CheckedLayer,
  redis: WorkerParts['connection'],
  overrides: WorkerOverrides,
  hooks: { grants: SkillGrants; onRecord: (entry: EgressRecord) => void },
): EgressService {
  return new EgressService({
    docker: layer.hostEngine,
    redis,
    instance: config.SANDBOT_INSTANCE,
    rules: config.SANDBOT_NETWORK_RULES,
    route: layer.verdict.egress,
    port: config.SANDBOT_EGRESS_PORT,
    maxBytes: config.SANDBOT_EGRESS_MAX_BYTES,
    maxSeconds: config.SANDBOT_EGRESS_MAX_SECONDS,
    maxConnections: config.SANDBOT_EGRESS_MAX_CONNECTIONS,
    maxLookups: config.SANDBOT_EGRESS_MAX_LOOKUPS,
    logger: log,
    lookup: overrides.lookup,
    skillGrants: hooks.grants,
    onRecord: hooks.onRecord,
  });
}

/** The schedule queue's consumer: occurrences become messages, runs are recorded after their turns. */
function scheduleRunner(
  config: Config,
  log: Logger,
  parts: Pick<WorkerParts, 'connection' | 'inbound' | 'outbound' | 'observed'>,
  workerId: () => string,
): ScheduleRunner {
  return new ScheduleRunner({
    schedules: new Schedules(parts.connection, config, parts.observed.audit),
    inbound: parts.inbound,
    quarantine: new Quarantine(parts.connection, config.SANDBOT_INSTANCE),
    audit: parts.observed.audit,
    publish: (event) => parts.outbound.publish(event),
    logger: log,
    actor: () => `worker:${workerId()}`,
    instance: config.SANDBOT_INSTANCE,
    catchUp: config.SANDBOT_SCHEDULE_CATCH_UP,
    maxFailures: config.SANDBOT_SCHEDULE_MAX_FAILURES,
  });
}
