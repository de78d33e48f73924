import type { Redis } from 'ioredis';
import type { Config } from '../contracts/config/schema.js';
import type { ConversationId } from '../contracts/conversation/id.js';
import type { Logger } from '../contracts/log/logger.js';
import { conversationKeys } from '../contracts/redis/keys.js';
import { AuditLog } from '../shared/audit/audit-log.js';
import { type ActivitySummary, summarizeConversation } from '../shared/audit/summary.js';
import { type HostsSnapshot, readHosts } from '../shared/hosts/host-report.js';
import { hostsSection } from '../shared/hosts/host-section.js';
import { sandbotMetrics } from '../shared/metrics.js';
import { runProbe } from '../shared/probe.js';
import type { ConversationStore } from '../shared/queue/conversation-store.js';
import { readWorkerLayers, type WorkerLayer, workerReadiness } from '../shared/stores/layer-report.js';
import type { ChatAdapter, Platform } from './chat-adapter.js';
import type { HealthReport, HttpServer } from './http-server.js';
import { registerMetricsRoute } from './metrics-route.js';
import { checkReadiness } from './readiness.js';
import { redisPostureCache, securitySection } from './security-section.js';

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
  const workers = workerReports(options.probe, config.SANDBOT_INSTANCE);
  const redisPosture = redisPostureCache(config.SANDBOT_REDIS_URL);
  const unregister = sandbotMetrics().source('queueDepth', config.SANDBOT_INSTANCE, () =>
    queueDepth(connection, store, config.SANDBOT_INSTANCE),
  );
  return {
    audit,
    /**
     * `/readyz`: Redis, then the container engine, Ollama and the sandbox layers as the live workers
     * report them (see layer-report.ts), and each chat connection; and the security posture.
     */
    health: async (adapters: ReadonlyMap<Platform, ChatAdapter>): Promise<HealthReport> => {
      const [report, reported, redis, snapshot] = await Promise.all([
        checkReadiness({ redis: (signal) => pingRedis(options.probe, signal) }, {}, READY_TIMEOUT_MS),
        workers.read(READY_TIMEOUT_MS),
        redisPosture(READY_TIMEOUT_MS).catch(() => undefined),
        hostsNow(options.probe, config.SANDBOT_INSTANCE),
      ]);
      const hosts = hostsSection(snapshot, Date.now(), config.SANDBOT_HOST_GRACE_SECONDS * 1000);
      const checks = {
        ...report.checks,
        ...workerReadiness(config.SANDBOX_LAYER, reported, Date.now()),
        hosts: hosts.check,
        ...Object.fromEntries([...adapters.values()].map((a) => [a.platform, a.health()])),
      };
      const security = securitySection(config, reported, redis, Date.now());
      return { ok: Object.values(checks).every((c) => c.ok), checks, security, hosts: hosts.hosts };
    },
    /** A conversation's recent activity from its audit file, for `status`. */
    activity: (conversation: ConversationId): Promise<ActivitySummary | undefined> =>
      summarizeConversation(audit.journal, conversation),
    register: (app: HttpServer) => registerMetricsRoute(app, config),
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

/**
 * The workers' reports, read afresh each time; while Redis cannot be read, the last ones read (each
 * still counts only while fresh, so a long outage ends in "no worker has reported").
 */
function workerReports(redis: Redis, instance: string) {
  let last = new Map<string, WorkerLayer>();
  return {
    async read(timeoutMs: number): Promise<ReadonlyMap<string, WorkerLayer>> {
      const read = async (signal: AbortSignal) => {
        await pingRedis(redis, signal); // waits out the first connect, as the redis check does
        last = await readWorkerLayers(redis, instance);
        return undefined;
      };
      // Redis is down or slow: its own check says so; the last reports stand meanwhile.
      await runProbe(read, timeoutMs);
      return last;
    },
  };
}

/** The hosts' reports and homes; none while Redis cannot be read (its own check says so). */
async function hostsNow(redis: Redis, instance: string): Promise<HostsSnapshot> {
  const none: HostsSnapshot = { reports: [], draining: new Set(), homes: new Map() };
  if (redis.status !== 'ready') return none;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<HostsSnapshot>((resolve) => {
    timer = setTimeout(() => resolve(none), READY_TIMEOUT_MS);
  });
  return Promise.race([readHosts(redis, instance, true).catch(() => none), late]).finally(() =>
    clearTimeout(timer),
  );
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
