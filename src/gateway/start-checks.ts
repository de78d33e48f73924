import { type AllowlistSettings, openToAll } from '../contracts/config/allowlists.js';
import type { Config } from '../contracts/config/schema.js';
import { isLoopback } from './http-auth.js';

/** Shortest API token accepted where the bind is not loopback. */
export const MIN_TOKEN_CHARS = 32;
/** How the service image's placeholder token begins (Dockerfile); never a real token. */
export const PLACEHOLDER_PREFIX = 'change-me';

const MAKE_TOKEN = 'set SANDBOT_API_TOKEN to 32+ random characters (e.g. `openssl rand -hex 32`)';

/**
 * Why the gateway must not start with this bind and token, or undefined: beyond loopback anyone who
 * reaches the port could drive the agent, so a real token is required there; the image's placeholder
 * is refused on every bind (it is public).
 */
export function exposureProblem(
  config: Pick<Config, 'SANDBOT_HTTP_HOST' | 'SANDBOT_API_TOKEN'>,
): string | undefined {
  const host = config.SANDBOT_HTTP_HOST;
  const token = config.SANDBOT_API_TOKEN;
  const where = `SANDBOT_HTTP_HOST=${host}`;
  if (token?.toLowerCase().startsWith(PLACEHOLDER_PREFIX)) {
    return `SANDBOT_API_TOKEN is still the placeholder "${token}" (${where}): ${MAKE_TOKEN}`;
  }
  if (isLoopback(host)) return undefined;
  const open = `${where} is not a loopback address, so anyone who reaches this port could drive the agent`;
  if (token === undefined)
    return `${open}, and SANDBOT_API_TOKEN is not set: ${MAKE_TOKEN}, or bind 127.0.0.1`;
  if (token.length < MIN_TOKEN_CHARS) {
    return `${open}, and SANDBOT_API_TOKEN is shorter than ${MIN_TOKEN_CHARS} characters: ${MAKE_TOKEN}`;
  }
  return undefined;
}

/**
 * Why open chat allowlists stop the start, or undefined: with every list empty, anyone in any
 * workspace or server that adds the app can use the agent; that must be said out loud (*_ALLOW_ALL).
 */
export function openAllowlistProblem(config: AllowlistSettings): string | undefined {
  if (openToAll(config, 'slack') && !config.SLACK_ALLOW_ALL) {
    return 'SLACK_BOT_TOKEN is set and SLACK_ALLOWED_TEAMS, SLACK_ALLOWED_CHANNELS and SLACK_ALLOWED_USERS are empty: every member of any Slack workspace that adds this app could use the agent. Set an allowlist, or SLACK_ALLOW_ALL=true to accept that';
  }
  if (openToAll(config, 'discord') && !config.DISCORD_ALLOW_ALL) {
    return 'DISCORD_TOKEN is set and DISCORD_ALLOWED_GUILDS, DISCORD_ALLOWED_CHANNELS and DISCORD_ALLOWED_ROLES are empty: every member of any Discord server that adds this bot could use the agent. Set an allowlist, or DISCORD_ALLOW_ALL=true to accept that';
  }
  return undefined;
}

/** Throws the first reason the gateway must not start (one line, for `sandbot: …`, exit 1). */
export function assertGatewayMayStart(config: Config): void {
  const problem = exposureProblem(config) ?? openAllowlistProblem(config);
  if (problem !== undefined) throw new Error(problem);
}
