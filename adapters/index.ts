import type { AdapterDeps, ChatAdapter } from '../src/gateway/chat-adapter.js';
import { webChatEnabled } from './web/enabled.js';

/**
 * The chat adapters the config enables, for the gateway: Slack and Discord by their tokens, the web
 * chat by SANDBOT_WEB_CHAT. Each platform's library loads only when its token is set (start-up time
 * and memory).
 */
export async function createChatAdapters(deps: AdapterDeps): Promise<ChatAdapter[]> {
  const { config } = deps;
  const adapters: ChatAdapter[] = [];
  if (config.SLACK_BOT_TOKEN) {
    const { createSlackAdapter } = await import('./slack/slack-adapter.js');
    adapters.push(createSlackAdapter(deps));
  }
  if (config.DISCORD_TOKEN) {
    const { createDiscordAdapter } = await import('./discord/discord-adapter.js');
    adapters.push(createDiscordAdapter(deps));
  }
  if (webChatEnabled(config)) {
    const { createWebAdapter } = await import('./web/web-adapter.js');
    adapters.push(createWebAdapter(deps));
  }
  return adapters;
}
