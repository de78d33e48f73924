import type { Config } from '../../src/contracts/config/schema.js';

/** SANDBOT_WEB_CHAT=auto serves the web chat only when no chat platform is configured. */
export function webChatEnabled(
  config: Pick<Config, 'SANDBOT_WEB_CHAT' | 'SLACK_BOT_TOKEN' | 'DISCORD_TOKEN'>,
): boolean {
  if (config.SANDBOT_WEB_CHAT === 'on') return true;
  if (config.SANDBOT_WEB_CHAT === 'off') return false;
  return config.SLACK_BOT_TOKEN === undefined && config.DISCORD_TOKEN === undefined;
}
