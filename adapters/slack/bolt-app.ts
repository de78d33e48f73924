import type { RequestListener } from 'node:http';
import { App, HTTPReceiver, SocketModeReceiver, type webApi } from '@slack/bolt';
import type { Config } from '../../src/contracts/config/schema.js';
import type { Logger } from '../../src/contracts/log/logger.js';
import { boltLogger } from './bolt-logger.js';

/** Where the Events API is served on the gateway's HTTP server in HTTP mode. */
export const EVENTS_PATH = '/slack/events';

/**
 * The web client's retries per call. Few, because the outbound queue retries a failed delivery with its
 * own backoff; at least one, because a 429 is honoured by waiting its Retry-After and then retrying.
 */
const RETRY_CONFIG = { retries: 4, factor: 2, minTimeout: 500, maxTimeout: 8000, randomize: true };

export type SlackMode = 'socket' | 'http';

export interface BoltSetup {
  app: App;
  client: webApi.WebClient;
  mode: SlackMode;
  /** Socket Mode's connection state, for health. */
  connection: ConnectionState;
  /** HTTP mode: Bolt's request listener for POST /slack/events (signature checks included). */
  requestListener?: RequestListener;
}

type SlackConfig = Pick<
  Config,
  | 'SLACK_BOT_TOKEN'
  | 'SLACK_APP_TOKEN'
  | 'SLACK_SIGNING_SECRET'
  | 'SLACK_API_URL'
  | 'SLACK_SOCKET_PING_TIMEOUT_MS'
>;

/** Socket Mode when an app token is set (no public URL needed), the HTTP Events API otherwise. */
export function slackMode(config: SlackConfig): SlackMode {
  if (config.SLACK_APP_TOKEN) return 'socket';
  if (config.SLACK_SIGNING_SECRET) return 'http';
  throw new Error(
    'SLACK_BOT_TOKEN is set but neither SLACK_APP_TOKEN (Socket Mode) nor SLACK_SIGNING_SECRET (HTTP Events API at POST /slack/events) is: set one of them',
  );
}

/** The real Bolt app, pointed at SLACK_API_URL, with the receiver the config asks for. */
export function createBoltApp(config: SlackConfig, logger: Logger): BoltSetup {
  const token = config.SLACK_BOT_TOKEN;
  if (!token) throw new Error('SLACK_BOT_TOKEN is not set: the Slack adapter needs the bot token (xoxb-…)');
  const mode = slackMode(config);
  const log = boltLogger(logger.child({ component: 'bolt' }));
  const clientOptions = { slackApiUrl: config.SLACK_API_URL, logger: log, retryConfig: RETRY_CONFIG };
  const connection = new ConnectionState(mode);
  let requestListener: RequestListener | undefined;
  let receiver: SocketModeReceiver | HTTPReceiver;
  if (mode === 'socket') {
    const socket = new SocketModeReceiver({
      appToken: config.SLACK_APP_TOKEN as string,
      logger: log,
      // The reconnect delay is this × the attempt number; a late pong drops the connection.
      clientPingTimeout: config.SLACK_SOCKET_PING_TIMEOUT_MS,
      // apps.connections.open goes to SLACK_API_URL too (the socket client's own web client).
      installerOptions: { clientOptions: { slackApiUrl: config.SLACK_API_URL } },
    });
    connection.watch(socket.client);
    receiver = socket;
  } else {
    const http = new HTTPReceiver({
      signingSecret: config.SLACK_SIGNING_SECRET as string,
      endpoints: EVENTS_PATH,
      logger: log,
      bodyLimit: 1_048_576,
    });
    requestListener = http.requestListener;
    receiver = http;
  }
  const app = new App({
    token,
    receiver,
    logger: log,
    clientOptions,
    // auth.test runs in start(), where a bad token can fail the gateway's start with a clear error.
    deferInitialization: true,
    convoStore: false,
  });
  return { app, client: app.client, mode, connection, ...(requestListener ? { requestListener } : {}) };
}

interface SocketEvents {
  on(event: string, listener: (...args: unknown[]) => void): unknown;
}

/** Tracks the socket client's lifecycle events; the socket client reconnects by itself. */
export class ConnectionState {
  state = 'not started';
  since = Date.now();

  constructor(readonly mode: SlackMode) {}

  watch(client: SocketEvents): void {
    for (const state of ['connecting', 'connected', 'reconnecting', 'disconnecting', 'disconnected']) {
      client.on(state, () => this.set(state));
    }
    // The socket closed: the client waits before it reconnects, and is down meanwhile.
    client.on('close', () => {
      if (this.state === 'connected') this.set('disconnected (reconnecting soon)');
    });
  }

  private set(state: string): void {
    this.state = state;
    this.since = Date.now();
  }

  get connected(): boolean {
    return this.state === 'connected';
  }
}
