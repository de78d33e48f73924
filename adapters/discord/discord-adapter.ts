import { UnrecoverableError } from 'bullmq';
import { REST } from 'discord.js';
import type { OutboundEvent } from '../../src/contracts/protocol/outbound.js';
import { discordKeys } from '../../src/contracts/redis/chat-keys.js';
import type { AdapterDeps, ChatAdapter } from '../../src/gateway/chat-adapter.js';
import { accessPolicyFrom } from './access.js';
import { handleInteractionCreate } from './command-handler.js';
import { SLASH_COMMANDS } from './commands.js';
import { DiscordConnection } from './connection.js';
import { DiscordRoute } from './conversation.js';
import { DiscordApi } from './discord-api.js';
import { ChannelDirectory, type HandlerContext, ThreadRegistry } from './handler-context.js';
import { handleMessageCreate } from './message-handler.js';
import type { DiscordChannel } from './payloads.js';
import { ProgressMessages, type ProgressOptions } from './progress-message.js';
import { ReplySender } from './reply-sender.js';

export interface DiscordAdapterOptions {
  progress: Partial<ProgressOptions>;
  /** See ConnectionOptions. */
  stuckAfterMs?: number;
  startWaitMs?: number;
}

/**
 * The Discord adapter: a supervised gateway connection for events in, the REST API for answers out.
 * Deliveries use their own REST client, so replies go out even while the gateway socket reconnects.
 */
export function createDiscordAdapter(
  deps: AdapterDeps,
  options: Partial<DiscordAdapterOptions> = {},
): ChatAdapter {
  const { config, logger: parentLogger } = deps;
  const token = config.DISCORD_TOKEN;
  if (!token) throw new Error('DISCORD_TOKEN is not set: the Discord adapter needs the bot token.');
  const logger = parentLogger.child({ adapter: 'discord' });
  const api = new DiscordApi(new REST({ api: config.DISCORD_API_URL }).setToken(token));
  const keys = discordKeys(config.SANDBOT_INSTANCE);
  const ledger = deps.deliveryOnce('discord');
  const { editIntervalMs, ...typing }: ProgressOptions = {
    editIntervalMs: 1500,
    typingIntervalMs: 8000,
    typingMaxMs: config.SANDBOX_TURN_TIMEOUT_SECONDS * 1000,
    ...options.progress,
  };
  const edits = deps.throttles.editPacer(editIntervalMs);
  const progress = new ProgressMessages(api, deps.redis, ledger, keys, edits, logger, typing);
  const replies = new ReplySender(api, ledger, deps.blobs);

  let botId: string | undefined;
  const channelChains = new Map<string, Promise<void>>();
  let registeredFor: string | undefined;
  const context: HandlerContext = {
    deps: { ...deps, logger },
    api,
    policy: accessPolicyFrom(config),
    keys,
    threads: new ThreadRegistry(deps.redis, keys),
    channels: new ChannelDirectory(api, (id) => cachedChannel(id)),
    botId: () => botId,
  };

  const connection = new DiscordConnection({
    token,
    apiUrl: config.DISCORD_API_URL,
    logger,
    ...(options.stuckAfterMs ? { stuckAfterMs: options.stuckAfterMs } : {}),
    ...(options.startWaitMs ? { startWaitMs: options.startWaitMs } : {}),
    onDispatch(type, data) {
      const report = (error: unknown) => logger.error({ err: error, type }, 'discord: event not handled');
      if (type === 'INTERACTION_CREATE') {
        // Not queued behind anything: Discord wants an answer within 3 seconds.
        handleInteractionCreate(context, data).catch(report);
        return;
      }
      // Messages of one channel are handled one after another, so they are queued in the order sent.
      const channel = String((data as { channel_id?: unknown }).channel_id ?? '');
      const next = (channelChains.get(channel) ?? Promise.resolve())
        .then(() => handleMessageCreate(context, data))
        .catch(report);
      channelChains.set(channel, next);
      void next.finally(() => {
        if (channelChains.get(channel) === next) channelChains.delete(channel);
      });
    },
    onReady(ids) {
      botId = ids.botId;
      const applicationId = config.DISCORD_APPLICATION_ID ?? ids.applicationId;
      if (applicationId && registeredFor !== applicationId) {
        registerCommands(applicationId).then(
          () => {
            registeredFor = applicationId;
          },
          (error: unknown) =>
            logger.error(
              { err: error },
              'discord: slash commands not registered (does the invite include applications.commands?)',
            ),
        );
      }
    },
  });

  /** Guild commands appear at once; global ones can take up to an hour to reach every client. */
  async function registerCommands(applicationId: string): Promise<void> {
    const guilds = config.DISCORD_GUILD_IDS;
    if (guilds.length === 0) await api.putCommands(applicationId, undefined, [...SLASH_COMMANDS]);
    for (const guild of guilds) await api.putCommands(applicationId, guild, [...SLASH_COMMANDS]);
    logger.info({ guilds: guilds.length ? guilds : 'global' }, 'discord: slash commands registered');
  }

  function cachedChannel(id: string): DiscordChannel | undefined {
    return connection.cachedChannel(id);
  }

  async function deliver(event: OutboundEvent): Promise<void> {
    const parsed = DiscordRoute.safeParse(event.route);
    if (!parsed.success) {
      throw new UnrecoverableError(
        `discord event ${event.id} has no Discord route (channelId): it cannot be delivered`,
      );
    }
    const route = parsed.data;
    const turnId = event.turnId ?? event.id;
    if (event.type === 'progress') return progress.progress(event, route);
    await progress.finish(turnId, route);
    if (event.type === 'reply') return replies.send(event.id, route, event.text, event.files ?? []);
    return replies.send(event.id, route, `⚠️ ${event.message}`);
  }

  return {
    platform: 'discord',
    start: () => connection.start(),
    async stop() {
      progress.close();
      await connection.stop();
    },
    deliver,
    health: () => connection.health(),
  };
}
