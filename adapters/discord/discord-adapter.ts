import { REST } from 'discord.js';
import type { Logger } from '../../src/contracts/log/logger.js';
import { discordKeys } from '../../src/contracts/redis/chat-keys.js';
import type { AdapterDeps, ChatAdapter } from '../../src/gateway/chat-adapter.js';
import { InOrder } from '../../src/gateway/in-order.js';
import { accessPolicyFrom } from './access.js';
import { handleApprovalButton, isComponentInteraction } from './approval-buttons.js';
import { handleInteractionCreate } from './command-handler.js';
import { SLASH_COMMANDS } from './commands.js';
import { DiscordConnection } from './connection.js';
import { createDiscordDelivery } from './delivery.js';
import { DiscordApi } from './discord-api.js';
import { ChannelDirectory, type HandlerContext, ThreadRegistry } from './handler-context.js';
import { handleMessageCreate } from './message-handler.js';
import type { ProgressOptions } from './progress-message.js';

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
  const delivery = createDiscordDelivery(deps, { api, keys, logger, progress: options.progress });

  let botId: string | undefined;
  // Messages of one channel are handled one after another, so they are queued in the order sent.
  const channels = new InOrder();
  let registeredFor: string | undefined;
  const context: HandlerContext = {
    deps: { ...deps, logger },
    api,
    policy: accessPolicyFrom(config),
    keys,
    threads: new ThreadRegistry(deps.redis, keys),
    channels: new ChannelDirectory(api, (id) => connection.cachedChannel(id)),
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
        const handle = isComponentInteraction(data) ? handleApprovalButton : handleInteractionCreate;
        handle(context, data).catch(report);
        return;
      }
      const channel = String((data as { channel_id?: unknown }).channel_id ?? '');
      channels.run(channel, () => handleMessageCreate(context, data)).catch(report);
    },
    onReady(ids) {
      botId = ids.botId;
      const applicationId = config.DISCORD_APPLICATION_ID ?? ids.applicationId;
      if (applicationId && registeredFor !== applicationId) {
        registerCommands(api, applicationId, config.DISCORD_GUILD_IDS, logger).then(
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

  return {
    platform: 'discord',
    start: () => connection.start(),
    async stop() {
      delivery.close();
      await connection.stop();
    },
    deliver: (event) => delivery.deliver(event),
    health: () => connection.health(),
  };
}

/** Guild commands appear at once; global ones can take up to an hour to reach every client. */
async function registerCommands(
  api: DiscordApi,
  applicationId: string,
  guilds: readonly string[],
  logger: Logger,
): Promise<void> {
  if (guilds.length === 0) await api.putCommands(applicationId, undefined, [...SLASH_COMMANDS]);
  for (const guild of guilds) await api.putCommands(applicationId, guild, [...SLASH_COMMANDS]);
  logger.info({ guilds: guilds.length ? guilds : 'global' }, 'discord: slash commands registered');
}
