import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { createSlackAdapter, type SlackAdapter } from '../../adapters/slack/slack-adapter.js';
import type { Config } from '../../src/contracts/config/schema.js';
import type { InboundMessage } from '../../src/contracts/protocol/inbound.js';
import type { AdapterDeps } from '../../src/gateway/chat-adapter.js';
import { chatServices } from '../../src/gateway/chat-services.js';
import { createHttpServer, type HttpServer } from '../../src/gateway/http-server.js';
import { createConversationControl } from '../../src/shared/queue/conversation-control.js';
import { ConversationStore } from '../../src/shared/queue/conversation-store.js';
import { InboundQueue } from '../../src/shared/queue/inbound-queue.js';
import { BlobStore } from '../../src/shared/stores/blob-store.js';
import { type FakeSlack, startFakeSlack } from '../../testkit/fakes/fake-slack.js';
import { SlackSender, type Transport } from '../../testkit/fakes/fake-slack-events.js';
import { dropInstanceKeys, REDIS_URL, testInstance } from '../../testkit/redis.js';
import { queuedMessages } from './queued.js';
import { testConfig } from './stack.js';

/** Settings that point a sandbot config at a fake Slack, over the chosen transport. */
export function slackSettings(fake: FakeSlack, transport: Transport): Record<string, string> {
  return {
    SLACK_BOT_TOKEN: fake.botToken,
    SLACK_API_URL: fake.apiUrl,
    // Quick reconnects in tests: the delay is this × the attempt number.
    SLACK_SOCKET_PING_TIMEOUT_MS: '600',
    ...(transport === 'socket'
      ? { SLACK_APP_TOKEN: fake.appToken }
      : { SLACK_SIGNING_SECRET: fake.signingSecret }),
  };
}

/**
 * The real Slack adapter (real Bolt) against a fake Slack, with the real inbound queue in Redis but no
 * worker: what the adapter queued is read back from the queue. HTTP mode serves the Events API on the
 * gateway's real HTTP server.
 */
export interface SlackHarness {
  fake: FakeSlack;
  adapter: SlackAdapter;
  sender: SlackSender;
  config: Config;
  redis: Redis;
  /** Log lines the adapter wrote (JSON objects), for audit records. */
  logs: Record<string, unknown>[];
  /** Messages queued so far, in order. */
  queued(): Promise<InboundMessage[]>;
  stop(): Promise<void>;
}

export async function startSlackHarness(
  label: string,
  transport: Transport,
  overrides: Record<string, string> = {},
  /** The rate limits' clock, for tests that move past a window. */
  clock?: () => number,
): Promise<SlackHarness> {
  const fake = await startFakeSlack();
  const config = testConfig(testInstance(label), { ...slackSettings(fake, transport), ...overrides });
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean))
        logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const logger = pino({ level: 'debug' }, sink);
  const redis = new Redis(REDIS_URL);
  const instance = config.SANDBOT_INSTANCE;
  const store = new ConversationStore(redis, instance);
  const inbound = new InboundQueue(redis, store, instance);
  const deps: AdapterDeps = {
    config,
    logger,
    submit: (message) => inbound.submit(message),
    control: createConversationControl(redis, store, config),
    blobs: new BlobStore(redis, instance),
    redis,
    ...chatServices(redis, config, clock ? { clock } : {}),
  };
  const adapter = createSlackAdapter(deps);
  let http: HttpServer | undefined;
  if (transport === 'http') {
    http = createHttpServer({ config, logger, health: async () => ({ ok: true, checks: {} }) });
    adapter.registerRoutes(http);
  }
  await adapter.start();
  const url = http ? await http.listen({ host: '127.0.0.1', port: 0 }) : undefined;
  return {
    fake,
    adapter,
    config,
    redis,
    logs,
    sender: new SlackSender(fake, transport, url ? `${url}/slack/events` : undefined),
    queued: () => queuedMessages(inbound, redis, instance),
    async stop() {
      await http?.close();
      await adapter.stop();
      await inbound.close();
      await fake.close();
      redis.disconnect();
      await dropInstanceKeys(instance);
    },
  };
}
