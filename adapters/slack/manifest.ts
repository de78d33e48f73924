import { EVENTS_PATH } from './bolt-app.js';

/** What the adapter calls, scope by scope; `sandbot doctor` names the ones a token lacks. */
export const BOT_SCOPES = [
  'app_mentions:read', // app_mention events
  'channels:history', // messages in public channel threads
  'groups:history', // … private channels
  'im:history', // DMs
  'mpim:history', // group DMs
  'chat:write', // replies, progress messages, ephemeral notes
  'reactions:write', // 👀 ✅ ❌
  'files:read', // attachments
  'files:write', // reply files
  'users:read', // names the agent reads
  'commands', // /sandbot
] as const;

export const BOT_EVENTS = [
  'app_mention',
  'message.channels',
  'message.groups',
  'message.im',
  'message.mpim',
] as const;

export interface ManifestOptions {
  /** Socket Mode (no public URL); otherwise the gateway's public base URL serves the Events API. */
  socketMode: boolean;
  publicUrl?: string;
  name?: string;
}

/** The app manifest to paste into api.slack.com/apps → Create New App → From a manifest. */
export function slackManifest(options: ManifestOptions): Record<string, unknown> {
  const name = options.name ?? 'sandbot';
  if (!options.socketMode && !options.publicUrl) {
    throw new Error('the HTTP Events API needs the gateway’s public URL (e.g. https://sandbot.example.com)');
  }
  const requestUrl = options.socketMode
    ? undefined
    : `${options.publicUrl?.replace(/\/+$/, '')}${EVENTS_PATH}`;
  return {
    display_information: {
      name,
      description: 'An AI agent with its own sandbox per conversation',
    },
    features: {
      app_home: { messages_tab_enabled: true, messages_tab_read_only_enabled: false },
      bot_user: { display_name: name, always_online: true },
      slash_commands: [
        {
          command: '/sandbot',
          description: 'Status, stop or reset your conversation with the agent',
          usage_hint: 'status | stop | reset | kill | network',
          should_escape: false,
          ...(requestUrl ? { url: requestUrl } : {}),
        },
      ],
    },
    oauth_config: { scopes: { bot: [...BOT_SCOPES] } },
    settings: {
      event_subscriptions: {
        bot_events: [...BOT_EVENTS],
        ...(requestUrl ? { request_url: requestUrl } : {}),
      },
      // Approval cards' buttons: Slack posts the clicks to the same URL as events (or over the socket).
      interactivity: { is_enabled: true, ...(requestUrl ? { request_url: requestUrl } : {}) },
      org_deploy_enabled: false,
      socket_mode_enabled: options.socketMode,
      token_rotation_enabled: false,
    },
  };
}
