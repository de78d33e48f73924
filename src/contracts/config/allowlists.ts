import type { Config } from './schema.js';

export type AllowlistSettings = Pick<
  Config,
  | 'SLACK_BOT_TOKEN'
  | 'SLACK_ALLOWED_TEAMS'
  | 'SLACK_ALLOWED_CHANNELS'
  | 'SLACK_ALLOWED_USERS'
  | 'SLACK_ALLOW_ALL'
  | 'DISCORD_TOKEN'
  | 'DISCORD_ALLOWED_GUILDS'
  | 'DISCORD_ALLOWED_CHANNELS'
  | 'DISCORD_ALLOWED_ROLES'
  | 'DISCORD_ALLOW_ALL'
>;

/**
 * A chat platform is on (its token is set) with every allowlist empty: then every member of any
 * workspace or server that adds the app may use the agent. The gateway refuses that without
 * *_ALLOW_ALL=true, and the posture report names it when allowed.
 */
export function openToAll(config: AllowlistSettings, platform: 'slack' | 'discord'): boolean {
  const [token, lists] =
    platform === 'slack'
      ? [
          config.SLACK_BOT_TOKEN,
          [config.SLACK_ALLOWED_TEAMS, config.SLACK_ALLOWED_CHANNELS, config.SLACK_ALLOWED_USERS],
        ]
      : [
          config.DISCORD_TOKEN,
          [config.DISCORD_ALLOWED_GUILDS, config.DISCORD_ALLOWED_CHANNELS, config.DISCORD_ALLOWED_ROLES],
        ];
  return token !== undefined && token !== '' && lists.every((list) => list.length === 0);
}
