import type Dockerode from 'dockerode';
import type { Redis } from 'ioredis';
import type { DockerSandboxDriver } from '../../../sandbox/host/driver/docker-driver.js';
import type { SandboxDriver } from '../../../sandbox/host/driver/types.js';
import type { Config } from '../../contracts/config/schema.js';
import type { Logger } from '../../contracts/log/logger.js';
import type { OutboundEvent } from '../../contracts/protocol/outbound.js';
import type { AuditRecorder } from '../../shared/audit/audit-log.js';
import { serveHostCommands } from '../../shared/hosts/host-commands.js';
import { hostIdOf, publishHostReport } from '../../shared/hosts/host-report.js';
import type { ConversationStore } from '../../shared/queue/conversation-store.js';
import { drainHandlers } from './drain-move.js';
import { HostGate } from './host-gate.js';

export interface WorkerHost {
  gate: HostGate;
  stop(): Promise<void>;
}

/**
 * This worker's host: the engine its sandboxes live on (the micro-VM's under microvm), by its ID; its
 * reports (capacity and heartbeat) and the gate that keeps each conversation on its home.
 */
export async function startWorkerHost(
  config: Config,
  parts: {
    engine: Dockerode;
    /** Makes sandboxes for conversations a drain moves here (`prepare`), and frees moved-away ones. */
    driver: SandboxDriver & Pick<DockerSandboxDriver, 'prepare'>;
    redis: Redis;
    store: ConversationStore;
    publish: (event: OutboundEvent) => Promise<void>;
    audit?: AuditRecorder;
    /** Whether sandboxes live on the engine at DOCKER_HOST (not the micro-VM's): then a drain can reach it. */
    reachable: boolean;
  },
  workerId: string,
  log: Logger,
): Promise<WorkerHost> {
  const info = (await parts.engine.info()) as { ID?: string; Name?: string; DockerRootDir?: string };
  const host = hostIdOf(info);
  // One listing (shared by the callers of the moment, see countRunning): asked by every new conversation.
  const measure = async () => {
    const { sandboxes, pooled } = await parts.driver.countRunning();
    return { live: sandboxes + pooled, warm: pooled };
  };
  const report = publishHostReport(parts.redis, config.SANDBOT_INSTANCE, async () => ({
    host,
    worker: workerId,
    ...(info.Name ? { name: info.Name.slice(0, 200) } : {}),
    ...(parts.reachable ? { endpoint: config.DOCKER_HOST ?? 'unix:///var/run/docker.sock' } : {}),
    maxLive: config.SANDBOX_MAX_LIVE,
    ...(await measure()),
  }));
  await report.first;
  const gate = new HostGate(
    {
      redis: parts.redis,
      store: parts.store,
      publish: parts.publish,
      logger: log,
      ...(parts.audit ? { audit: parts.audit } : {}),
    },
    {
      instance: config.SANDBOT_INSTANCE,
      host,
      graceMs: config.SANDBOT_HOST_GRACE_SECONDS * 1000,
      free: async () => {
        const { live, warm } = await measure();
        return Math.max(0, config.SANDBOX_MAX_LIVE - live) + warm;
      },
    },
  );
  // `sandbot host drain`: conversations moved here (their files copied in), or away (their images freed).
  const commands = serveHostCommands(
    parts.redis,
    config.SANDBOT_INSTANCE,
    host,
    drainHandlers({
      ...{ redis: parts.redis, instance: config.SANDBOT_INSTANCE, host },
      ...{ driver: parts.driver, store: parts.store, logger: log },
      ...(parts.audit ? { audit: parts.audit } : {}),
    }),
    log,
  );
  log.info({ host, name: info.Name }, 'worker host');
  return {
    gate,
    async stop() {
      await commands.stop();
      report.stop();
      await gate.close();
    },
  };
}
