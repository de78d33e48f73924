import type { Config } from '../contracts/config/schema.js';
import type { Logger } from '../contracts/log/logger.js';
import { createConversationControl } from '../shared/queue/conversation-control.js';
import { ConversationStore } from '../shared/queue/conversation-store.js';
import { InboundQueue } from '../shared/queue/inbound-queue.js';
import { createFailFastRedis, createRedis, readyOrTimeout } from '../shared/redis/connection.js';
import { BlobStore } from '../shared/stores/blob-store.js';
import type { AdapterDeps, ChatAdapter, ChatAdapterFactory, Platform } from './chat-adapter.js';
import { chatServices } from './chat-services.js';
import { registerConsole } from './console/console-routes.js';
import { createHttpServer } from './http-server.js';
import { observeGateway } from './observability.js';
import { OutboundDispatcher } from './outbound-dispatcher.js';
import { assertGatewayMayStart } from './start-checks.js';

export { assertGatewayMayStart };

/** How long the gateway waits for Redis before it listens anyway (its /readyz then says why not ready). */
const REDIS_READY_WAIT_MS = 10_000;

export interface RunningGateway {
  /** The address the HTTP server listens on, e.g. http://127.0.0.1:8787. */
  url: string;
  stop(): Promise<void>;
}

/**
 * Wires a gateway from config: the chat adapters `createAdapters` builds (adapters/index.ts), the HTTP
 * server (health, metrics, the adapters' routes) and the delivery of outbound events.
 */
export async function startGateway(
  config: Config,
  logger: Logger,
  createAdapters: ChatAdapterFactory,
): Promise<RunningGateway> {
  assertGatewayMayStart(config); // before anything connects: an open door is refused, not warned about
  const log = logger.child({ role: 'gateway' });
  const connection = createRedis(config.SANDBOT_REDIS_URL, `${config.SANDBOT_INSTANCE}-gateway`);
  // Submits from HTTP must fail fast (503) when Redis is down, not hang the request.
  const submitConnection = createFailFastRedis(config.SANDBOT_REDIS_URL, `${config.SANDBOT_INSTANCE}-submit`);
  const store = new ConversationStore(submitConnection, config.SANDBOT_INSTANCE);
  const observed = observeGateway({ connection, probe: submitConnection, store, config, logger: log });
  const inbound = new InboundQueue(submitConnection, store, config.SANDBOT_INSTANCE, observed.audit);

  const adapterDeps: AdapterDeps = {
    config,
    logger: log,
    audit: observed.audit,
    submit: (message) => inbound.submit(message),
    control: Object.assign(createConversationControl(submitConnection, store, config, observed.audit), {
      activity: observed.activity,
    }),
    blobs: new BlobStore(connection, config.SANDBOT_INSTANCE),
    redis: connection,
    ...chatServices(connection, config, { limitsRedis: submitConnection, audit: observed.audit }),
  };
  const adapters = new Map<Platform, ChatAdapter>(
    (await createAdapters(adapterDeps)).map((adapter) => [adapter.platform, adapter]),
  );
  for (const adapter of adapters.values()) await adapter.start();
  const dispatcher = new OutboundDispatcher(connection, config.SANDBOT_INSTANCE, adapters, log);
  dispatcher.start();

  const http = createHttpServer({ config, logger: log, health: () => observed.health(adapters) });
  observed.register(http);
  for (const adapter of adapters.values()) adapter.registerRoutes?.(http);
  // The operator console needs the token to sign in: without one, /console does not exist (404).
  if (config.SANDBOT_API_TOKEN) {
    registerConsole(http, {
      ...adapterDeps,
      redis: submitConnection,
      store,
      audit: observed.audit,
    });
  }
  if (!(await readyOrTimeout(submitConnection, REDIS_READY_WAIT_MS))) {
    log.warn(
      { waitedMs: REDIS_READY_WAIT_MS },
      'Redis is not answering; listening anyway (messages get 503 and /readyz says why until it is back)',
    );
  }
  const url = await http.listen({ host: config.SANDBOT_HTTP_HOST, port: config.SANDBOT_HTTP_PORT });
  log.info({ url, web: adapters.has('web') }, 'gateway listening');
  return {
    url,
    async stop() {
      await http.close();
      await dispatcher.stop();
      await observed.stop();
      for (const adapter of adapters.values()) await adapter.stop();
      await inbound.close();
      await adapterDeps.schedules.close();
      connection.disconnect();
      submitConnection.disconnect();
    },
  };
}
