import { Writable } from 'node:stream';
import { pino } from 'pino';
import { createDiscordAdapter, type DiscordAdapterOptions } from '../../adapters/discord/discord-adapter.js';
import type { Config } from '../../src/contracts/config/schema.js';
import type { InboundMessage } from '../../src/contracts/protocol/inbound.js';
import type { AdapterDeps } from '../../src/gateway/chat-adapter.js';
import { chatServices } from '../../src/gateway/chat-services.js';
import { createConversationControl } from '../../src/shared/queue/conversation-control.js';
import { ConversationStore } from '../../src/shared/queue/conversation-store.js';
import { InboundQueue } from '../../src/shared/queue/inbound-queue.js';
import { createRedis } from '../../src/shared/redis/connection.js';
import { BlobStore } from '../../src/shared/stores/blob-store.js';
import { type FakeDiscord, startFakeDiscord } from '../../testkit/fakes/fake-discord.js';
import { dropInstanceKeys, REDIS_URL, testInstance } from '../../testkit/redis.js';
import { queuedMessages } from './queued.js';
import { testConfig } from './stack.js';

/**
 * The real Discord adapter (real discord.js client, real Redis queue, blob store and control) against a
 * fake Discord, without a worker: tests read what was queued from the inbound queue itself and call
 * `deliver` with the events a worker would emit.
 */
export async function startDiscordHarness(
  settings: (fake: FakeDiscord) => Record<string, string> = () => ({}),
  options: Partial<DiscordAdapterOptions> = {},
  /** The rate limits' clock, for tests that move past a window. */
  clock?: () => number,
) {
  const fake = await startFakeDiscord();
  const config: Config = testConfig(testInstance('discord'), {
    DISCORD_TOKEN: fake.token,
    DISCORD_APPLICATION_ID: fake.applicationId,
    DISCORD_API_URL: fake.apiUrl,
    DISCORD_GUILD_IDS: fake.guild.id,
    SANDBOT_WEB_CHAT: 'off',
    ...settings(fake),
  });
  const instance = config.SANDBOT_INSTANCE;
  const redis = createRedis(REDIS_URL, `${instance}-discord-test`);
  const store = new ConversationStore(redis, instance);
  const inbound = new InboundQueue(redis, store, instance);
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n')) if (line.trim()) logs.push(JSON.parse(line));
      done();
    },
  });
  const deps: AdapterDeps = {
    config,
    logger: pino({ level: 'debug' }, sink),
    submit: (message) => inbound.submit(message),
    control: createConversationControl(redis, store, config),
    blobs: new BlobStore(redis, instance),
    redis,
    ...chatServices(redis, config, clock ? { clock } : {}),
  };
  const adapter = createDiscordAdapter(deps, { progress: { editIntervalMs: 200 }, ...options });
  await adapter.start();

  /** Messages on the inbound queue, oldest first. */
  function queued(): Promise<InboundMessage[]> {
    return queuedMessages(inbound, redis, instance);
  }

  return {
    fake,
    config,
    adapter,
    deps,
    store,
    logs,
    queued,
    /** Waits until a queued message matches. */
    async waitForQueued(match: (m: InboundMessage) => boolean, what: string): Promise<InboundMessage> {
      let found: InboundMessage | undefined;
      const deadline = Date.now() + 20_000;
      while (!found && Date.now() < deadline) {
        found = (await queued()).find(match);
        if (!found) await new Promise((r) => setTimeout(r, 50));
      }
      if (!found) throw new Error(`timed out waiting for a queued message: ${what}`);
      return found;
    },
    async stop() {
      await adapter.stop();
      await inbound.close();
      redis.disconnect();
      await fake.close();
      await dropInstanceKeys(instance);
    },
  };
}

export type DiscordHarness = Awaited<ReturnType<typeof startDiscordHarness>>;
