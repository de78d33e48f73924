import { z } from 'zod';
import { flag, int, list, optionalSecret } from './setting-fields.js';

/** The Slack and Discord settings, spread into the schema (schema.ts) in this order: the docs' order. */
export const CHAT_SETTINGS = {
  SLACK_BOT_TOKEN: optionalSecret.describe('Slack bot token (xoxb-…); enables the Slack adapter.'),
  SLACK_APP_TOKEN: optionalSecret.describe(
    'Slack app-level token (xapp-…): Socket Mode, no public URL needed.',
  ),
  SLACK_SIGNING_SECRET: optionalSecret.describe(
    'Slack signing secret: HTTP Events API at POST /slack/events (used when SLACK_APP_TOKEN is unset).',
  ),
  SLACK_API_URL: z
    .string()
    .url()
    .default('https://slack.com/api/')
    .describe('Slack Web API base URL (point it at a local server for tests).'),
  SLACK_SOCKET_PING_TIMEOUT_MS: int(300, 120_000)
    .default(5000)
    .describe(
      'Socket Mode: a pong later than this drops the connection; reconnects wait this long times the attempt number.',
    ),
  SLACK_ALLOWED_TEAMS: list.describe(
    'Slack workspace ids allowed to use the bot, comma-separated (empty: all).',
  ),
  SLACK_ALLOWED_CHANNELS: list.describe(
    'Slack channel ids allowed, comma-separated (empty: all; DMs count as channels).',
  ),
  SLACK_ALLOWED_USERS: list.describe('Slack user ids allowed, comma-separated (empty: all).'),
  SLACK_ALLOW_ALL: flag.describe(
    'With SLACK_BOT_TOKEN set and all three Slack allowlists empty, the gateway starts only when this is true: anyone in any workspace that adds the app may use the agent.',
  ),
  SLACK_ADMIN_USERS: list.describe('Slack user ids allowed admin commands (kill, network), comma-separated.'),
  DISCORD_TOKEN: optionalSecret.describe('Discord bot token; enables the Discord adapter.'),
  DISCORD_APPLICATION_ID: optionalSecret.describe('Discord application id (needed with DISCORD_TOKEN).'),
  DISCORD_API_URL: z
    .string()
    .url()
    .default('https://discord.com/api')
    .describe('Discord REST base URL; the gateway URL then comes from GET /gateway/bot.'),
  DISCORD_GUILD_IDS: list.describe(
    'Guilds to register slash commands in at once (empty: register globally).',
  ),
  DISCORD_ALLOWED_GUILDS: list.describe('Discord guild ids allowed, comma-separated (empty: all).'),
  DISCORD_ALLOWED_CHANNELS: list.describe(
    'Discord channel ids allowed (a thread counts as its parent), comma-separated (empty: all).',
  ),
  DISCORD_ALLOWED_ROLES: list.describe('Discord role ids allowed, comma-separated (empty: everyone).'),
  DISCORD_ALLOW_ALL: flag.describe(
    'With DISCORD_TOKEN set and all three Discord allowlists empty, the gateway starts only when this is true: anyone in any server that adds the bot may use the agent.',
  ),
  DISCORD_ADMIN_ROLE: optionalSecret.describe('Discord role id for /kill, /network and /run.'),
};
