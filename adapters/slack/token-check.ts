import { webApi } from '@slack/bolt';
import type { Config } from '../../src/contracts/config/schema.js';
import type { DoctorCheck } from '../../src/contracts/doctor/check.js';
import { BOT_SCOPES } from './manifest.js';

type SlackTokens = Pick<
  Config,
  'SLACK_BOT_TOKEN' | 'SLACK_APP_TOKEN' | 'SLACK_SIGNING_SECRET' | 'SLACK_API_URL'
>;

/** One finding, in the shape `sandbot doctor` reports. */
export type TokenCheck = DoctorCheck;

const REINSTALL =
  'add them under OAuth & Permissions (or re-create the app from `sandbot slack manifest`), then reinstall the app';

/**
 * For `sandbot doctor`: the bot token works (auth.test) and has every scope the adapter uses (Slack
 * lists a token's scopes in the x-oauth-scopes header); the app token can open a Socket Mode connection.
 */
export async function checkSlackTokens(config: SlackTokens, timeoutMs = 5000): Promise<TokenCheck[]> {
  if (!config.SLACK_BOT_TOKEN) return [];
  const options = {
    slackApiUrl: config.SLACK_API_URL,
    retryConfig: { retries: 0 },
    timeout: timeoutMs,
    rejectRateLimitedCalls: true,
  };
  const checks: TokenCheck[] = [];
  try {
    const auth = await new webApi.WebClient(config.SLACK_BOT_TOKEN, options).auth.test();
    const granted = auth.response_metadata?.scopes;
    const missing = granted ? BOT_SCOPES.filter((scope) => !granted.includes(scope)) : [];
    const who = `bot ${auth.user ?? auth.user_id} in ${auth.team ?? auth.team_id}`;
    checks.push(
      missing.length === 0
        ? {
            name: 'Slack bot token',
            ok: true,
            detail: granted ? `${who}, all scopes granted` : `${who} (scopes not reported)`,
          }
        : {
            name: 'Slack bot token',
            ok: false,
            detail: `${who} lacks the scopes ${missing.join(', ')}`,
            fix: REINSTALL,
          },
    );
  } catch (error) {
    checks.push({
      name: 'Slack bot token',
      ok: false,
      detail: `auth.test at ${config.SLACK_API_URL} failed: ${reason(error)}`,
      fix: 'set SLACK_BOT_TOKEN to the app’s Bot User OAuth Token (xoxb-…), and check that Slack is reachable',
    });
  }
  if (config.SLACK_APP_TOKEN) {
    try {
      await new webApi.WebClient(config.SLACK_APP_TOKEN, options).apps.connections.open();
      checks.push({
        name: 'Slack Socket Mode',
        ok: true,
        detail: 'the app token opens Socket Mode connections',
      });
    } catch (error) {
      checks.push({
        name: 'Slack Socket Mode',
        ok: false,
        detail: `apps.connections.open failed: ${reason(error)}`,
        fix: 'set SLACK_APP_TOKEN to an app-level token (xapp-…) with connections:write, and enable Socket Mode for the app',
      });
    }
  } else if (config.SLACK_SIGNING_SECRET) {
    checks.push({
      name: 'Slack Events API',
      ok: true,
      detail: 'HTTP mode: Slack must reach POST /slack/events on this gateway',
    });
  } else {
    checks.push({
      name: 'Slack transport',
      ok: false,
      detail: 'neither SLACK_APP_TOKEN nor SLACK_SIGNING_SECRET is set',
      fix: 'set SLACK_APP_TOKEN for Socket Mode (no public URL needed), or SLACK_SIGNING_SECRET for the HTTP Events API',
    });
  }
  return checks;
}

function reason(error: unknown): string {
  const data = (error as { data?: { error?: string } }).data;
  if (data?.error) return data.error;
  return error instanceof Error ? error.message : String(error);
}
