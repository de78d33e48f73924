import type Dockerode from 'dockerode';
import type { Redis } from 'ioredis';
import { createDocker } from '../../sandbox/host/driver/docker-client.js';
import type { SandboxDriver } from '../../sandbox/host/driver/types.js';
import { describePlan, type LayerPlan, layerPlan, type WithLayer } from '../../sandbox/host/layers/layer.js';
import { checkLayer, type LayerVerdict } from '../../sandbox/host/layers/layer-check.js';
import type { WorkerGuest } from '../../sandbox/host/vm/worker-guest.js';
import type { AuditInput } from '../contracts/audit/events.js';
import type { Config } from '../contracts/config/schema.js';
import type { Logger } from '../contracts/log/logger.js';
import { parseEvents } from '../shared/audit/summary.js';
import type { ConversationStore } from '../shared/queue/conversation-store.js';
import type { InboundQueue } from '../shared/queue/inbound-queue.js';
import type { OutboundQueue } from '../shared/queue/outbound-queue.js';
import { ApprovalAllowances } from '../shared/stores/approval-allowances.js';
import { BlobStore } from '../shared/stores/blob-store.js';
import type { WorkerLayer } from '../shared/stores/layer-report.js';
import { Quarantine } from '../shared/stores/quarantine.js';
import { accessRequestsFor } from './approvals/access-wiring.js';
import type { WorkerObservability } from './audit/worker-observability.js';
import { contextFitterFor, type FittedChatRequest, type FittedChatResult } from './broker/context-window.js';
import type { ModelBroker } from './broker/model-broker.js';
import { ModelGate } from './broker/model-gate.js';
import { RoutedBroker } from './broker/routed-broker.js';
import { defaultSystemPrompt } from './broker/system-prompt.js';
import { subAgentOutbound } from './delegation/delegation-outbound.js';
import { delegationFor } from './delegation/delegation-wiring.js';
import type { EgressService } from './egress/egress-service.js';
import type { EgressRecord } from './egress/proxy.js';
import type { SandboxWorker, SandboxWorkerDeps } from './sandbox-worker.js';
import type { WarmPool } from './sandboxes/warm-pool.js';
import type { ScheduleRunner } from './schedules/schedule-runner.js';
import type { WorkerSkills } from './skills/turn-skills.js';
import type { Canary } from './turn/canary.js';
import { hostToolSet } from './turn/host-tool-set.js';
import { OutboxLedger } from './turn/outbox-ledger.js';

/** The sandbox layer this worker runs, checked, and the engines it runs on. */
export interface CheckedLayer {
  verdict: Extract<LayerVerdict, { ok: true }>;
  /** Under SANDBOX_LAYER=microvm: the supervised guest. */
  guest?: WorkerGuest;
  /** The engine at DOCKER_HOST (the host's). */
  hostEngine: Dockerode;
  /** The engine the sandboxes live on (the guest's under microvm, else the host's). */
  sandboxEngine: Dockerode;
}

/**
 * Before any work is taken: a worker that cannot run its layer refuses to start, saying why.
 * SANDBOX_LAYER=microvm: the guest is started (or found running) and supervised; sandboxes live in its
 * engine. The micro-VM's code loads only then.
 */
export async function checkedSandboxLayer(
  config: WithLayer<Config>,
  log: Logger,
  /** How SANDBOX_LAYER=auto chose this layer (absent for an explicit layer). */
  chosen?: string,
): Promise<CheckedLayer> {
  const plan = layerPlan(config);
  const guest =
    plan.engine === 'guest'
      ? await (await import('../../sandbox/host/vm/worker-guest.js')).startWorkerGuest(config, log)
      : undefined;
  const hostEngine = createDocker(config.DOCKER_HOST);
  const sandboxEngine = guest?.docker ?? hostEngine;
  const verdict = await checkLayer(plan, {
    docker: hostEngine,
    endpoint: config.DOCKER_HOST,
    image: config.SANDBOX_IMAGE,
    instance: config.SANDBOT_INSTANCE,
    ...(guest ? { guest: (p: LayerPlan) => guest.check(p) } : {}),
  });
  if (!verdict.ok) {
    await guest?.stop();
    throw new Error(layerRefusal(verdict, chosen));
  }
  log.info({ layer: describePlan(verdict.plan), chosen, detail: verdict.detail }, 'sandbox layer checked');
  return { verdict, ...(guest ? { guest } : {}), hostEngine, sandboxEngine };
}

export function layerRefusal(verdict: Extract<LayerVerdict, { ok: false }>, chosen?: string): string {
  const fix = verdict.fix ? ` (fix: ${verdict.fix})` : '';
  return `the sandbox layer "${verdict.plan.layer}" cannot run here: ${verdict.reason}${fix}${chosen ? ` [${chosen}]` : ''}`;
}

/** What the worker reports of its layer (for `sandbot doctor` and the readiness check). */
export function layerReport(
  verdict: Extract<LayerVerdict, { ok: true }>,
  choice: Pick<WorkerLayer, 'setting' | 'reason'>,
): Omit<WorkerLayer, 'at' | 'engine' | 'checks'> {
  return {
    ...choice,
    layer: verdict.plan.layer,
    ...(verdict.plan.runtime ? { runtime: verdict.plan.runtime } : {}),
    detail: verdict.detail,
    egress: verdict.egress,
  };
}

/** The audit event of one request through the egress proxy; none when no conversation made it. */
export function netRequestEvent(entry: EgressRecord): AuditInput | undefined {
  if (!entry.conversation) return undefined;
  return {
    conversation: entry.conversation,
    actor: 'proxy',
    kind: 'net.request',
    data: {
      host: entry.host,
      port: entry.port,
      allowed: entry.allowed,
      ...(entry.skill ? { skill: entry.skill } : {}),
      ...(entry.reason ? { reason: entry.reason } : {}),
      bytes: entry.bytesIn + entry.bytesOut,
      method: entry.method,
      durationMs: entry.durationMs,
    },
  };
}

/** How the worker runs its queue and sandboxes, from config. */
export function workerOptions(config: Config): ConstructorParameters<typeof SandboxWorker>[1] {
  return {
    instance: config.SANDBOT_INSTANCE,
    concurrency: config.SANDBOT_WORKER_CONCURRENCY,
    leaseSeconds: config.SANDBOT_TURN_LEASE_SECONDS,
    idleSeconds: config.SANDBOX_IDLE_SECONDS,
    egressRefusalTripwire: config.SANDBOT_TRIPWIRE_EGRESS_REFUSALS,
    maxLive: config.SANDBOX_MAX_LIVE,
    ephemeral: config.SANDBOT_EPHEMERAL,
    taskLimits: { perUser: config.SANDBOT_TASKS_PER_USER, perChannel: config.SANDBOT_TASKS_PER_CHANNEL },
    retentionDays: config.SANDBOT_VOLUME_RETENTION_DAYS,
  };
}

/** The parts a worker's turns use, wired before the worker itself. */
export interface WorkerParts {
  connection: Redis;
  store: ConversationStore;
  inbound: InboundQueue;
  outbound: OutboundQueue;
  driver: SandboxDriver;
  broker: RoutedBroker<FittedChatRequest, FittedChatResult>;
  egress: EgressService;
  canary: Canary;
  skills: WorkerSkills;
  observed: WorkerObservability;
  pool?: WarmPool;
  schedules?: ScheduleRunner;
}

/** What the worker's turns are given; `self` is the worker (tripwires and delegation call back into it). */
export function sandboxWorkerDeps(
  config: Config,
  log: Logger,
  parts: WorkerParts,
  self: () => SandboxWorker,
): SandboxWorkerDeps {
  const { connection, driver, egress, canary, skills, observed, inbound, pool } = parts;
  const tripwire = (...args: Parameters<SandboxWorker['tripwire']>) => self().tripwire(...args);
  // A sub-agent's result goes to its parent (in Redis) and its progress to the parent's thread.
  const publish = observed.counted(
    subAgentOutbound(connection, config.SANDBOT_INSTANCE, (event) => parts.outbound.publish(event)),
  );
  const actor = () => `worker:${self().id}` as const;
  const allowances = new ApprovalAllowances(connection, config.SANDBOT_INSTANCE);
  const delegate = delegationFor(config, {
    connection,
    driver,
    inbound,
    egress,
    audit: observed.audit,
    canaryFor: (conversation) => canary.token(conversation),
    tripwire,
    logger: log,
    actor,
    extraSubAgents: (conversation) => allowances.extraSubAgents(conversation),
  });
  const requestAccess = accessRequestsFor(config, {
    connection,
    egress,
    publish,
    audit: observed.audit,
    logger: log,
    actor,
  });
  return {
    connection,
    store: parts.store,
    inbound,
    driver,
    broker: parts.broker,
    publish,
    observe: observed.observe,
    networkFor: (conversation) => egress.networkFor(conversation),
    skillAccessFor: (conversation, network, names) => egress.skillAccess(conversation, network, names),
    quarantine: new Quarantine(connection, config.SANDBOT_INSTANCE),
    audit: observed.audit,
    readAudit: async (conversation) => [
      ...parseEvents((await observed.audit.journal.read(conversation)) ?? ''),
      ...(await observed.audit.store.queued(conversation)),
    ],
    ...(pool ? { pool } : {}),
    afterTurn: async (turn, outcome) => parts.schedules?.turnEnded(turn, outcome),
    canaryFor: (conversation) => canary.token(conversation),
    skillsFor: (conversation, turnId) => skills.forTurn(conversation, turnId),
    tripwire,
    hostTools: hostToolSet({ delegate, request_access: requestAccess }),
    logger: log,
    systemPrompt: defaultSystemPrompt(),
    blobs: new BlobStore(connection, config.SANDBOT_INSTANCE),
    ledger: new OutboxLedger(connection, config.SANDBOT_INSTANCE),
    config,
  };
}

/**
 * The broker the turns call: the model server's requests capped across workers (SANDBOT_MODEL_CONCURRENCY,
 * leases as long as the turns'), the fallback model (SANDBOT_MODEL_FALLBACK) when the chosen one fails,
 * and inside, each request fitted to the context window of the model that answers it (num_ctx named,
 * old messages folded).
 */
export function routedBroker(
  config: Config,
  redis: Redis,
  backend: ModelBroker,
  /** The model server's URL: the slots are counted per server. */
  serverUrl: string,
  log: Logger,
): RoutedBroker<FittedChatRequest, FittedChatResult> {
  const fitted = contextFitterFor(config, redis, backend, log);
  const gate = new ModelGate({
    redis,
    instance: config.SANDBOT_INSTANCE,
    serverUrl,
    max: config.SANDBOT_MODEL_CONCURRENCY,
    leaseMs: config.SANDBOT_TURN_LEASE_SECONDS * 1000,
  });
  return new RoutedBroker(fitted, {
    gate,
    ...(config.SANDBOT_MODEL_FALLBACK ? { fallback: config.SANDBOT_MODEL_FALLBACK } : {}),
  });
}
