import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/contracts/config/load.js';
import { exposureProblem, openAllowlistProblem } from '../../src/gateway/start-checks.js';

const TOKEN = 'a'.repeat(32);
const exposure = (env: Record<string, string>) => exposureProblem(parseConfig(env));
const allowlists = (env: Record<string, string>) => openAllowlistProblem(parseConfig(env));

describe('the gateway’s network door (issue #18)', () => {
  it('needs no token on a loopback bind (the default)', () => {
    expect(exposure({})).toBeUndefined();
    expect(exposure({ SANDBOT_HTTP_HOST: 'localhost', SANDBOT_API_TOKEN: 'short' })).toBeUndefined();
  });

  it('refuses a non-loopback bind without a token, naming both settings and how to make one', () => {
    const problem = exposure({ SANDBOT_HTTP_HOST: '0.0.0.0' });
    expect(problem).toMatch(/SANDBOT_HTTP_HOST=0\.0\.0\.0 is not a loopback address/);
    expect(problem).toMatch(/SANDBOT_API_TOKEN is not set: .*openssl rand -hex 32/);
    expect(problem).not.toContain('\n');
  });

  it('refuses a token shorter than 32 characters beyond loopback, and takes one of 32', () => {
    const host = { SANDBOT_HTTP_HOST: '192.168.1.5' };
    expect(exposure({ ...host, SANDBOT_API_TOKEN: TOKEN.slice(1) })).toMatch(/shorter than 32 characters/);
    expect(exposure({ ...host, SANDBOT_API_TOKEN: TOKEN })).toBeUndefined();
  });

  it('refuses the image’s placeholder token on any bind', () => {
    const placeholder = 'change-me-to-32-or-more-random-characters';
    for (const host of ['0.0.0.0', '127.0.0.1']) {
      expect(exposure({ SANDBOT_HTTP_HOST: host, SANDBOT_API_TOKEN: placeholder })).toMatch(
        /SANDBOT_API_TOKEN is still the placeholder .*openssl rand -hex 32/,
      );
    }
  });
});

describe('open chat allowlists (issue #18)', () => {
  it('refuses a Slack token with every Slack allowlist empty, unless SLACK_ALLOW_ALL=true', () => {
    expect(allowlists({ SLACK_BOT_TOKEN: 'xoxb-1' })).toMatch(
      /^SLACK_BOT_TOKEN is set and .* are empty: every member of any Slack workspace that adds this app could use the agent\. .*SLACK_ALLOW_ALL=true/,
    );
    expect(allowlists({ SLACK_BOT_TOKEN: 'xoxb-1', SLACK_ALLOW_ALL: 'true' })).toBeUndefined();
    for (const list of ['SLACK_ALLOWED_TEAMS', 'SLACK_ALLOWED_CHANNELS', 'SLACK_ALLOWED_USERS']) {
      expect(allowlists({ SLACK_BOT_TOKEN: 'xoxb-1', [list]: 'X1' })).toBeUndefined();
    }
  });

  it('refuses a Discord token with every Discord allowlist empty, unless DISCORD_ALLOW_ALL=true', () => {
    expect(allowlists({ DISCORD_TOKEN: 'd' })).toMatch(
      /^DISCORD_TOKEN is set and .* are empty: every member of any Discord server that adds this bot could use the agent\. .*DISCORD_ALLOW_ALL=true/,
    );
    expect(allowlists({ DISCORD_TOKEN: 'd', DISCORD_ALLOW_ALL: 'true' })).toBeUndefined();
    for (const list of ['DISCORD_ALLOWED_GUILDS', 'DISCORD_ALLOWED_CHANNELS', 'DISCORD_ALLOWED_ROLES']) {
      expect(allowlists({ DISCORD_TOKEN: 'd', [list]: '1' })).toBeUndefined();
    }
  });

  it('asks nothing when neither platform is configured', () => {
    expect(allowlists({})).toBeUndefined();
  });
});
