import { Client, Events, GatewayCloseCodes, GatewayIntentBits, Options, Status } from 'discord.js';
import type { Logger } from '../../src/contracts/log/logger.js';
import type { AdapterHealth } from '../../src/gateway/chat-adapter.js';
import type { DiscordChannel } from './payloads.js';

/**
 * Only the intents sandbot uses. MessageContent is privileged (enable it in the developer portal under
 * Bot → Privileged Gateway Intents): without it Discord sends empty text for messages that do not
 * mention the bot, so follow-ups in a thread would arrive blank.
 */
export const DISCORD_INTENTS =
  GatewayIntentBits.Guilds | // channels and threads (THREAD_CREATE), so messages in them are known
  GatewayIntentBits.GuildMessages | // messages in channels and threads
  GatewayIntentBits.DirectMessages | // DMs
  GatewayIntentBits.MessageContent; // the text of thread follow-ups (privileged)

/** Words for the close codes a restart cannot fix, so health says what to do. */
const CLOSE_ADVICE: Record<number, string> = {
  [GatewayCloseCodes.AuthenticationFailed]: 'the token was rejected: reset it in the developer portal',
  [GatewayCloseCodes.DisallowedIntents]:
    'Message Content intent not enabled: turn it on in the developer portal (Bot → Privileged Gateway Intents)',
  [GatewayCloseCodes.InvalidIntents]: 'invalid intents',
};

export interface ConnectionOptions {
  token: string;
  apiUrl: string;
  logger: Logger;
  /** Called with each MESSAGE_CREATE and INTERACTION_CREATE payload. */
  onDispatch(type: 'MESSAGE_CREATE' | 'INTERACTION_CREATE', data: unknown): void;
  /** Called after each READY (a fresh session), with the bot's and the application's ids. */
  onReady(ids: { botId: string; applicationId?: string }): void;
  /** A shard not ready for this long is given up and the client replaced. */
  stuckAfterMs?: number;
  /** How long `start()` waits for the first READY before leaving the login to continue alone. */
  startWaitMs?: number;
}

/**
 * The supervised gateway connection. discord.js (@discordjs/ws) resumes after drops and reconnects after
 * ordinary closes by itself; this adds what it does not do: a close it will not recover from (or a
 * shard stuck connecting) replaces the whole client, with backoff, without a process restart. Health is
 * the shard's real state, so it reads "down" while the socket is gone.
 */
export class DiscordConnection {
  private client?: Client;
  private detail = 'not started';
  private notReadySince: number | null = null;
  private restarts = 0;
  private restartTimer?: NodeJS.Timeout;
  private watchdog?: NodeJS.Timeout;
  private stopped = false;

  constructor(private readonly options: ConnectionOptions) {}

  /** Logs in. Rejects only on a rejected token; other failures are retried in the background. */
  async start(): Promise<void> {
    this.stopped = false;
    const stuckAfter = this.options.stuckAfterMs ?? 120_000;
    this.watchdog = setInterval(() => this.checkStuck(), Math.min(5_000, stuckAfter / 2));
    this.watchdog.unref();
    const login = this.connect();
    const waited = await Promise.race([
      login.then(() => 'ready' as const),
      sleep(this.options.startWaitMs ?? 20_000).then(() => 'waiting' as const),
    ]);
    if (waited === 'waiting')
      this.options.logger.warn('discord: still connecting; continuing in the background');
  }

  health(): AdapterHealth {
    const shard = this.client?.ws.shards.first();
    const ok = shard?.status === Status.Ready;
    return { ok, detail: ok ? 'connected' : this.detail };
  }

  /** A channel or thread the client knows from GUILD_CREATE / THREAD_CREATE, in API shape. */
  cachedChannel(id: string): DiscordChannel | undefined {
    const channel = this.client?.channels.cache.get(id);
    if (!channel) return undefined;
    return {
      id: channel.id,
      type: channel.type,
      ...('guildId' in channel && channel.guildId ? { guild_id: channel.guildId } : {}),
      ...(channel.isThread() ? { parent_id: channel.parentId, owner_id: channel.ownerId } : {}),
    };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.watchdog);
    clearTimeout(this.restartTimer);
    const client = this.client;
    this.client = undefined;
    this.detail = 'stopped';
    await client?.destroy();
  }

  private async connect(): Promise<void> {
    const { logger } = this.options;
    const client = new Client({
      intents: DISCORD_INTENTS,
      rest: { api: this.options.apiUrl },
      // Only channels and threads are looked up; message history is never read.
      makeCache: Options.cacheWithLimits({ ...Options.DefaultMakeCacheSettings, MessageManager: 0 }),
    });
    this.client = client;
    guardPackets(client, logger);
    this.detail = 'connecting';
    logger.info('discord: connecting a new client');
    client.on(Events.Raw, (packet: { t?: string; d?: unknown }) => {
      if (packet.t === 'MESSAGE_CREATE' || packet.t === 'INTERACTION_CREATE')
        this.options.onDispatch(packet.t, packet.d);
    });
    client.on(Events.ClientReady, (ready) => {
      this.restarts = 0;
      this.up('connected');
      this.options.onReady({
        botId: ready.user.id,
        ...(ready.application?.id ? { applicationId: ready.application.id } : {}),
      });
    });
    client.on(Events.ShardResume, () => this.up('resumed'));
    client.on(Events.ShardReconnecting, () => this.down('reconnecting'));
    client.on(Events.ShardDisconnect, (event) => {
      const advice = CLOSE_ADVICE[event.code] ?? 'closed';
      this.down(`disconnected (close code ${event.code}): ${advice}`);
      logger.error({ code: event.code }, `discord: gateway closed for good: ${advice}`);
      this.scheduleRestart();
    });
    client.on(Events.ShardError, (error) => logger.warn({ err: error }, 'discord: gateway connection error'));
    client.on(Events.Error, (error) => logger.warn({ err: error }, 'discord: client error'));
    try {
      await client.login(this.options.token);
    } catch (error) {
      if (this.client !== client) return;
      const code = (error as { code?: unknown }).code;
      if (code === 'TokenInvalid') {
        this.down('token rejected by Discord: check DISCORD_TOKEN (reset it in the developer portal)');
        throw new Error(
          'Discord rejected DISCORD_TOKEN (401): copy the bot token again from the developer portal.',
        );
      }
      this.down(`cannot connect: ${(error as Error).message}`);
      logger.warn({ err: error }, 'discord: login failed; retrying');
      this.scheduleRestart();
    }
  }

  private up(detail: string): void {
    this.detail = detail;
    this.options.logger.info(`discord: ${detail}`);
  }

  private down(detail: string): void {
    if (this.stopped) return; // destroying the client on stop closes the socket too
    this.detail = detail;
    this.options.logger.warn(`discord: ${detail}`);
  }

  private checkStuck(): void {
    if (this.stopped || this.restartTimer || this.health().ok) {
      this.notReadySince = null;
      return;
    }
    const now = Date.now();
    this.notReadySince ??= now;
    const stuckAfter = this.options.stuckAfterMs ?? 120_000;
    if (now - this.notReadySince > stuckAfter) {
      this.options.logger.warn(
        { stuckAfter },
        'discord: gateway not ready for too long; replacing the client',
      );
      this.notReadySince = null;
      this.scheduleRestart();
    }
  }

  /** Replaces the client after a backoff (1 s, 2 s, 4 s … at most 5 min). */
  private scheduleRestart(): void {
    if (this.stopped || this.restartTimer) return;
    const delay = Math.min(300_000, 1000 * 2 ** this.restarts);
    this.restarts += 1;
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      // The connection may have come back by itself during the backoff.
      if (this.health().ok) return;
      const old = this.client;
      this.client = undefined;
      void (async () => {
        await old?.destroy().catch(() => undefined);
        if (this.stopped) return;
        await this.connect().catch((error: unknown) => {
          this.options.logger.error({ err: error }, 'discord: reconnecting failed');
          this.scheduleRestart();
        });
      })();
    }, delay);
    this.restartTimer.unref();
  }
}

const sleep = (ms: number) =>
  new Promise<void>((resolve) => {
    setTimeout(resolve, ms).unref();
  });

/**
 * discord.js builds its caches from every dispatch and, on a malformed one, throws from an async event
 * handler: an unhandled rejection that would end the gateway process. sandbot reads the dispatches it
 * acts on itself (Events.Raw, zod-checked), so such a packet is logged and dropped instead.
 */
function guardPackets(client: Client, logger: Logger): void {
  const ws = client.ws as unknown as { handlePacket(packet: unknown, shard: unknown): boolean };
  const handle = ws.handlePacket.bind(ws);
  ws.handlePacket = (packet, shard) => {
    try {
      return handle(packet, shard);
    } catch (error) {
      logger.warn(
        { err: error, event: (packet as { t?: unknown } | undefined)?.t },
        'discord: a malformed gateway event was dropped',
      );
      return false;
    }
  };
}
