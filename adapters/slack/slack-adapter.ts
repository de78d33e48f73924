import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../../src/contracts/log/logger.js';
import { slackKeys } from '../../src/contracts/redis/chat-keys.js';
import type { AdapterDeps, AdapterHealth, ChatAdapter } from '../../src/gateway/chat-adapter.js';
import type { HttpServer } from '../../src/gateway/http-server.js';
import { accessPolicyFrom } from './access.js';
import { SlackApprovalActions } from './approval-actions.js';
import { type BoltSetup, createBoltApp, EVENTS_PATH } from './bolt-app.js';
import { SlackCommandHandler } from './command-handler.js';
import { SlackDelivery } from './delivery.js';
import { registerSlackEventsRoute } from './http-route.js';
import { SlackMessageHandler } from './message-handler.js';
import { ProgressMessages } from './progress-message.js';

export interface SlackAdapter extends ChatAdapter {
  readonly mode: 'socket' | 'http';
  /** HTTP mode: serves POST /slack/events on the gateway's HTTP server (call before it listens). */
  registerRoutes(http: HttpServer): void;
}

/** How long start() waits for the first Socket Mode connection before it goes on (health says so). */
const FIRST_CONNECT_WAIT_MS = 10_000;
/** Slack allows about one update per second per message. */
const PROGRESS_EDIT_INTERVAL_MS = 1500;

/**
 * The Slack adapter: the real Bolt app (Socket Mode or the HTTP Events API) feeding the inbound queue,
 * and delivery of the worker's events into Slack threads.
 */
export function createSlackAdapter(deps: AdapterDeps): SlackAdapter {
  const { config } = deps;
  const logger = deps.logger.child({ adapter: 'slack' });
  const bolt = createBoltApp(config, logger);
  const keys = slackKeys(config.SANDBOT_INSTANCE);
  const policy = accessPolicyFrom(config);
  const edits = deps.throttles.editPacer(PROGRESS_EDIT_INTERVAL_MS);
  const progress = new ProgressMessages(bolt.client, deps.redis, keys, logger, edits);
  const delivery = new SlackDelivery({
    client: bolt.client,
    claims: deps.deliveryOnce('slack'),
    progress,
    blobs: deps.blobs,
    logger,
    approvals: deps.approvals,
    submit: (message) => deps.submit(message),
  });
  listen(bolt, {
    messages: new SlackMessageHandler({
      deps,
      client: bolt.client,
      keys,
      policy,
      botToken: config.SLACK_BOT_TOKEN as string,
      logger,
    }),
    commands: new SlackCommandHandler({ deps, keys, policy, logger }),
    approvals: new SlackApprovalActions({ deps, client: bolt.client, policy, logger }),
    logger,
  });

  const state = { running: false, routesRegistered: false, botUser: '' };
  return {
    platform: 'slack',
    mode: bolt.mode,

    registerRoutes(http) {
      if (!bolt.requestListener) return;
      registerSlackEventsRoute(http, bolt.requestListener, () => state.running);
      state.routesRegistered = true;
    },

    async start() {
      state.botUser = await startBolt(bolt, config, logger);
      state.running = true;
      logger.info({ mode: bolt.mode, bot: state.botUser }, 'slack adapter started');
    },

    async stop() {
      state.running = false;
      progress.stop();
      if (bolt.mode === 'socket') await bolt.app.stop().catch(() => undefined);
    },

    deliver: (event) => delivery.deliver(event),

    health: () => slackHealth(bolt, state),
  };
}

/** Messages, slash commands and approval buttons into their handlers. */
function listen(
  bolt: BoltSetup,
  handlers: {
    messages: SlackMessageHandler;
    commands: SlackCommandHandler;
    approvals: SlackApprovalActions;
    logger: Logger;
  },
): void {
  const { messages, commands, approvals, logger } = handlers;
  const onEvent = async ({ body, context }: { body: unknown; context: { botUserId?: string } }) => {
    await messages.onEvent(body, context.botUserId);
  };
  bolt.app.event('app_mention', onEvent);
  bolt.app.event('message', onEvent);
  bolt.app.command(/^\/.+/, async ({ ack, body, respond }) => {
    await ack();
    await commands.handle(body, async (text) => {
      await respond({ response_type: 'ephemeral', text });
    });
  });
  // Approval buttons: ack within Slack's 3 seconds, then decide; notes go to the clicker only.
  bolt.app.action(/^sandbot_approval:/, async ({ ack, body, respond }) => {
    await ack();
    await approvals.onClick(body, async (text) => {
      await respond({ response_type: 'ephemeral', replace_original: false, text });
    });
  });
  bolt.app.error(async (error) => {
    logger.warn({ err: error }, 'handling a Slack event failed');
  });
}

/**
 * Checks the bot token (auth.test) and, in Socket Mode, connects, waiting a while for the first
 * connection; answers the bot's name for logs and health.
 */
async function startBolt(bolt: BoltSetup, config: AdapterDeps['config'], logger: Logger): Promise<string> {
  let botUser: string;
  try {
    await bolt.app.init();
    const auth = await bolt.client.auth.test();
    botUser = `${auth.user ?? auth.user_id} in ${auth.team ?? auth.team_id}`;
  } catch (error) {
    throw new Error(
      `auth.test at ${config.SLACK_API_URL} failed for SLACK_BOT_TOKEN: ${describe(error)} (check the token and that Slack is reachable)`,
    );
  }
  if (bolt.mode === 'socket') {
    const connecting = bolt.app.start() as Promise<unknown>;
    const first = await Promise.race([
      connecting.then(() => 'connected' as const),
      sleep(FIRST_CONNECT_WAIT_MS, 'waiting' as const, { ref: false }),
    ]).catch((error: unknown) => {
      throw new Error(`Slack Socket Mode did not start (check SLACK_APP_TOKEN): ${describe(error)}`);
    });
    if (first === 'waiting') {
      logger.warn('Slack Socket Mode is still connecting; the gateway starts anyway and health says so');
      connecting.catch((error: unknown) => logger.error({ err: error }, 'Slack Socket Mode failed to start'));
    }
  }
  return botUser;
}

function slackHealth(
  bolt: BoltSetup,
  state: { running: boolean; routesRegistered: boolean; botUser: string },
): AdapterHealth {
  if (!state.running) return { ok: false, detail: 'not started' };
  if (bolt.mode === 'http') {
    return state.routesRegistered
      ? { ok: true, detail: `HTTP Events API at POST ${EVENTS_PATH} (${state.botUser})` }
      : { ok: false, detail: `POST ${EVENTS_PATH} is not served: the gateway did not register the route` };
  }
  const { connection } = bolt;
  const since = Math.round((Date.now() - connection.since) / 1000);
  return connection.connected
    ? { ok: true, detail: `Socket Mode connected (${state.botUser})` }
    : { ok: false, detail: `Socket Mode ${connection.state} for ${since} s` };
}

function describe(error: unknown): string {
  const data = (error as { data?: { error?: string } }).data;
  if (data?.error) return data.error;
  return error instanceof Error ? error.message : String(error);
}
