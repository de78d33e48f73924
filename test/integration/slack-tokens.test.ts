import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkSlackTokens } from '../../adapters/slack/token-check.js';
import { type FakeSlack, startFakeSlack } from '../../testkit/fakes/fake-slack.js';

/** The doctor's Slack checks against the fake Slack: auth.test, scopes, and the app token. */

let fake: FakeSlack;
beforeAll(async () => {
  fake = await startFakeSlack();
});
afterAll(async () => {
  await fake?.close();
});

const tokens = (overrides: Record<string, string | undefined> = {}) => ({
  SLACK_BOT_TOKEN: fake.botToken,
  SLACK_APP_TOKEN: fake.appToken,
  SLACK_SIGNING_SECRET: undefined,
  SLACK_API_URL: fake.apiUrl,
  ...overrides,
});

describe('Slack token checks', () => {
  it('passes with working tokens and every scope', async () => {
    const checks = await checkSlackTokens(tokens());
    expect(checks.map((c) => [c.name, c.ok])).toEqual([
      ['Slack bot token', true],
      ['Slack Socket Mode', true],
    ]);
    expect(checks[0]?.detail).toBe('bot sandbot in Fake, all scopes granted');
  });

  it('names the scopes a bot token lacks', async () => {
    const all = fake.scopes;
    fake.scopes = all.filter((s) => s !== 'reactions:write' && s !== 'files:read');
    try {
      const [bot] = await checkSlackTokens(tokens());
      expect(bot).toMatchObject({
        ok: false,
        detail: expect.stringContaining('lacks the scopes reactions:write, files:read'),
      });
      expect(bot?.fix).toMatch(/reinstall/);
    } finally {
      fake.scopes = all;
    }
  });

  it('says what is wrong with a bad token or a missing transport', async () => {
    const bad = await checkSlackTokens(
      tokens({ SLACK_BOT_TOKEN: 'xoxb-wrong', SLACK_APP_TOKEN: 'xapp-wrong' }),
    );
    expect(bad.map((c) => [c.ok, c.detail])).toEqual([
      [false, `auth.test at ${fake.apiUrl} failed: invalid_auth`],
      [false, 'apps.connections.open failed: invalid_auth'],
    ]);
    const none = await checkSlackTokens(tokens({ SLACK_APP_TOKEN: undefined }));
    expect(none[1]).toMatchObject({ name: 'Slack transport', ok: false });
    expect(await checkSlackTokens(tokens({ SLACK_BOT_TOKEN: undefined }))).toEqual([]);
  });
});
