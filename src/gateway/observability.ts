import type Dockerode from 'dockerode';
import type { Redis } from 'ioredis';
import { createDocker } from '../../sandbox/host/driver/docker-client.js';
import type { Config } from '../contracts/config/schema.js';
import type { ConversationId } from '../contracts/conversation/id.js';
import type { Logger } from '../contracts/log/logger.js';
import { conversationKeys } from '../contracts/redis/keys.js';
import { AuditLog } from '../shared/audit/audit-log.js';
import { type ActivitySummary, summarizeConversation } from '../shared/audit/summary.js';
import { sandbotMetrics } from '../shared/metrics.js';
import type { ConversationStore } from '../shared/queue/conversation-store.js';
import { layerReadiness, readWorkerLayers } from '../shared/stores/layer-report.js';
import { ModelBroker } from '../worker/broker/model-broker.js';
import type { ChatAdapter, Platform } from './chat-adapter.js';
import type { HealthReport, HttpServer } from './http-server.js';
import { registerMetricsRoute } from './metrics-route.js';
import { checkReadiness } from './readiness.js';

/** Each readiness probe's time limit: /readyz answers within about this long, whatever is down. */
const READY_TIMEOUT_MS = 2000;

/** The gateway's audit log (message.received), `/metrics`, `/readyz` checks and queue-depth gauge. */
export function observeGateway(options: {
  /** Waits out Redis outages: for the queue-depth gauge. */
  connection: Redis;
  /**
   * Fails fast: for the readiness probe, and for the audit log, whose `message.received` is awaited
   * before a message is accepted (a submit must answer 503 at once when Redis is down, not hang).
   */
  probe: Redis;
  store: ConversationStore;
  config: Config;
  logger: Logger;
}) {
  const { config, connection, store } = options;
  const audit = new AuditLog(options.probe, config, options.logger);
  audit.start();
  const docker = createDocker(config.DOCKER_HOST);
  const broker = new ModelBroker({ host: config.OLLAMA_HOST, timeoutMs: READY_TIMEOUT_MS });
  const unregister = sandbotMetrics().source('queueDepth', config.SANDBOT_INSTANCE, () =>
    queueDepth(connection, store, config.SANDBOT_INSTANCE),
  );
  return {
    audit,
    /** `/readyz`: Redis, the container engine, Ollama, the workers' sandbox layers and each chat connection. */
    health: (adapters: ReadonlyMap<Platform, ChatAdapter>): Promise<HealthReport> =>
      checkReadiness(
        {
          redis: (signal) => pingRedis(options.probe, signal),
          docker: (signal) => pingEngine(docker, signal, config.DOCKER_HOST),
          ollama: async () => {
            const server = await broker.checkServer();
            if (!server.ok) throw new Error(server.error.message);
            return `Ollama ${server.version}`;
          },
          // The layers live workers checked and run under, and their sandbox engines (they publish them;
          // see layer-report.ts). Redis has its own entry.
          layer: async (signal) => {
            // The gateway does not probe (SANDBOX_LAYER=auto is resolved by each worker, which reports it).
            const configured = `SANDBOX_LAYER=${config.SANDBOX_LAYER}`;
            const workers = await pingRedis(options.probe, signal)
              .then(() => readWorkerLayers(options.probe, config.SANDBOT_INSTANCE))
              .catch(() => undefined);
            if (!workers) return `configured ${configured}; the workers' layers cannot be read without Redis`;
            const verdict = layerReadiness(configured, workers, Date.now());
            // No live worker's sandbox engine answers (e.g. the micro-VM is down): no sandbox can start.
            if (!verdict.ok) throw new Error(verdict.detail);
            return verdict.detail;
          },
        },
        Object.fromEntries([...adapters.values()].map((a) => [a.platform, a.health()])),
        READY_TIMEOUT_MS,
      ),
    /** A conversation's recent activity from its audit file, for `status`. */
    activity: (conversation: ConversationId): Promise<ActivitySummary | undefined> =>
      summarizeConversation(audit.journal, conversation),
    register: (app: HttpServer) => registerMetricsRoute(app),
    async stop() {
      unregister();
      await audit.stop();
    },
  };
}

/**
 * Pings over the fail-fast connection. Just after start-up it may still be connecting (and would refuse
 * at once): wait for it then; once it has been up, a lost connection fails at once.
 */
async function pingRedis(redis: Redis, signal: AbortSignal): Promise<undefined> {
  if (redis.status === 'connecting' || redis.status === 'connect' || redis.status === 'wait') {
    await new Promise<void>((resolve, reject) => {
      const ready = () => {
        signal.removeEventListener('abort', abort);
        resolve();
      };
      const abort = () => {
        redis.off('ready', ready);
        reject(new Error('not connected yet'));
      };
      redis.once('ready', ready);
      signal.addEventListener('abort', abort, { once: true });
    });
  }
  await redis.ping();
  return undefined;
}

async function pingEngine(docker: Dockerode, signal: AbortSignal, endpoint?: string): Promise<string> {
  // dockerode's types omit it, but ping() takes { abortSignal } and cancels the request with it.
  await (docker.ping as (opts: { abortSignal: AbortSignal }) => Promise<unknown>).call(docker, {
    abortSignal: signal,
  });
  return endpoint ?? 'unix:///var/run/docker.sock';
}

/** Messages waiting for or in a turn, summed over the conversations that have any. */
async function queueDepth(redis: Redis, store: ConversationStore, instance: string): Promise<number> {
  const conversations = await store.activeConversations();
  if (conversations.length === 0) return 0;
  const pipeline = redis.pipeline();
  for (const conversation of conversations) pipeline.zcard(conversationKeys(instance, conversation).pending);
  const results = (await pipeline.exec()) ?? [];
  return results.reduce((sum, [error, count]) => sum + (error ? 0 : Number(count)), 0);
}
