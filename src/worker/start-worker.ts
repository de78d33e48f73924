import { createDocker } from '../../sandbox/driver/docker-client.js';
import { sandboxDriverFromConfig } from '../../sandbox/driver/from-config.js';
import type { AuditLog } from '../audit/audit-log.js';
import { observeWorker } from '../audit/worker-observability.js';
import { ModelBroker } from '../broker/model-broker.js';
import { defaultSystemPrompt } from '../broker/system-prompt.js';
import type { Config } from '../config/schema.js';
import { EgressService } from '../egress/egress-service.js';
import type { EgressRecord, Lookup } from '../egress/proxy.js';
import { BlobStore } from '../files/blob-store.js';
import { OutboxLedger } from '../files/outbox-ledger.js';
import type { Logger } from '../log/logger.js';
import { ConversationStore } from '../queue/conversation-store.js';
import { InboundQueue } from '../queue/inbound-queue.js';
import { OutboundQueue } from '../queue/outbound-queue.js';
import { Quarantine } from '../queue/quarantine.js';
import { createRedis } from '../queue/redis.js';
import { Canary } from './canary.js';
import { SandboxWorker } from './sandbox-worker.js';

export interface RunningWorker {
  worker: SandboxWorker;
  /** This worker's audit log (e.g. for the egress proxy's net.request events). */
  audit: AuditLog;
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
  const connection = createRedis(config.SANDBOT_REDIS_URL, `${config.SANDBOT_INSTANCE}-worker`);
  const store = new ConversationStore(connection, config.SANDBOT_INSTANCE);
  const inbound = new InboundQueue(connection, store, config.SANDBOT_INSTANCE);
  const outbound = new OutboundQueue(connection, config.SANDBOT_INSTANCE);
  const driver = sandboxDriverFromConfig(config, log);
  const egress = new EgressService({
    docker: createDocker(config.DOCKER_HOST),
    redis: connection,
    instance: config.SANDBOT_INSTANCE,
    rules: config.SANDBOT_NETWORK_RULES,
    port: config.SANDBOT_EGRESS_PORT,
    maxBytes: config.SANDBOT_EGRESS_MAX_BYTES,
    maxSeconds: config.SANDBOT_EGRESS_MAX_SECONDS,
    logger: log,
    lookup: overrides.lookup,
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
  const observed = observeWorker({ connection, config, logger: log, driver, workerId: () => worker.id });
  const worker = new SandboxWorker(
    {
      connection,
      store,
      inbound,
      driver,
      broker,
      publish: observed.counted((event) => outbound.publish(event)),
      observe: observed.observe,
      networkFor: (conversation) => egress.networkFor(conversation),
      quarantine: new Quarantine(connection, config.SANDBOT_INSTANCE),
      audit: observed.audit,
      canaryFor: (conversation) => canary.token(conversation),
      tripwire: (conversation, reason) => worker.tripwire(conversation, reason),
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
    },
  );
  worker.start();
  log.info({ id: worker.id, concurrency: config.SANDBOT_WORKER_CONCURRENCY }, 'worker started');
  return {
    worker,
    audit: observed.audit,
    async stop() {
      await worker.stop();
      await observed.stop();
      await egress.stop();
      await Promise.all([inbound.close(), outbound.close()]);
      connection.disconnect();
    },
  };
}
