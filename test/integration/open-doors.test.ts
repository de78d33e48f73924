import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeDiscord } from '../../testkit/fakes/fake-discord.js';
import { type FakeOllama, startFakeOllama } from '../../testkit/fakes/fake-ollama.js';
import { startFakeSlack } from '../../testkit/fakes/fake-slack.js';
import { cleanInstance } from '../../testkit/instance.js';
import { freePort } from '../../testkit/ports.js';
import { testInstance } from '../../testkit/redis.js';
import { type CliService, serviceSettings, spawnService } from '../helpers/cli-service.js';
import { testConfig } from '../helpers/stack.js';

/**
 * Issue #18: no open door. The built CLI in its own process, as an operator starts it: what it refuses
 * to start with (one line on stderr, exit 1), and what its HTTP server answers once up.
 */

const instance = testInstance('doors');
const TOKEN = randomBytes(24).toString('hex'); // 48 characters
let ollama: FakeOllama;

beforeAll(async () => {
  ollama = await startFakeOllama({ script: () => ({ reply: 'hi' }) });
});

afterAll(async () => {
  await ollama.close();
  await cleanInstance(testConfig(instance));
});

function sandbot(command: 'up' | 'gateway', settings: Record<string, string>): CliService {
  return spawnService(command, {
    ...serviceSettings(instance, ollama.url),
    SANDBOT_API_TOKEN: '',
    SANDBOT_HTTP_HOST: '127.0.0.1',
    ...settings,
  });
}

/** Exit code and stderr lines of a start that must be refused. */
async function refused(command: 'up' | 'gateway', settings: Record<string, string>) {
  const service = sandbot(command, settings);
  const code = await Promise.race([
    service.exit,
    new Promise<string>((resolve) => setTimeout(() => resolve('still running after 30 s'), 30_000)),
  ]);
  if (typeof code === 'string') service.child.kill('SIGKILL');
  return { code, lines: service.stderr().trim().split('\n') };
}

/** A request with any Host header (fetch will not forge one); resolves with the status code. */
function status(
  url: string,
  headers: Record<string, string> = {},
  method = 'GET',
  body = '',
): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, headers }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function eventually<T>(what: string, check: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function stop(service: CliService): Promise<void> {
  service.child.kill('SIGTERM');
  expect(await service.exit).toBe(0);
}

describe('the web API beyond loopback', () => {
  it('refuses to start without a token, exit 1, one line naming both settings and how to make one', async () => {
    const result = await refused('gateway', { SANDBOT_HTTP_HOST: '0.0.0.0' });
    expect(result).toEqual({
      code: 1,
      lines: [
        expect.stringMatching(
          /^sandbot: SANDBOT_HTTP_HOST=0\.0\.0\.0 is not a loopback address.*SANDBOT_API_TOKEN is not set: .*openssl rand -hex 32/,
        ),
      ],
    });
  });

  it('refuses a token shorter than 32 characters, and `up` refuses before its worker starts', async () => {
    const result = await refused('up', { SANDBOT_HTTP_HOST: '0.0.0.0', SANDBOT_API_TOKEN: 'x'.repeat(31) });
    expect(result).toEqual({
      code: 1,
      lines: [expect.stringMatching(/^sandbot: .*SANDBOT_API_TOKEN is shorter than 32 characters/)],
    });
  });

  it('refuses the service image’s placeholder token', async () => {
    const placeholder = /^\s+SANDBOT_API_TOKEN=(\S+)$/m.exec(readFileSync('Dockerfile', 'utf8'))?.[1];
    expect(placeholder).toMatch(/^change-me-/);
    const result = await refused('gateway', {
      SANDBOT_HTTP_HOST: '0.0.0.0',
      SANDBOT_API_TOKEN: placeholder ?? '',
    });
    expect(result).toEqual({
      code: 1,
      lines: [expect.stringMatching(/^sandbot: SANDBOT_API_TOKEN is still the placeholder/)],
    });
  });

  it('with a token: /readyz and /metrics need it (401 → 200), a forged Host header is refused', async () => {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const service = sandbot('up', {
      SANDBOT_HTTP_HOST: '0.0.0.0',
      SANDBOT_HTTP_PORT: String(port),
      SANDBOT_API_TOKEN: TOKEN,
    });
    try {
      await eventually('GET /healthz answering 200', async () =>
        (await status(`${base}/healthz`)) === 200 ? true : undefined,
      );
      const auth = { authorization: `Bearer ${TOKEN}` };
      expect(await status(`${base}/metrics`)).toBe(401);
      expect(await status(`${base}/readyz`)).toBe(401);
      expect(await status(`${base}/readyz`, { authorization: 'Bearer wrong' })).toBe(401);
      expect(await status(`${base}/metrics`, auth)).toBe(200);
      await eventually('GET /readyz answering 200 with the token', async () =>
        (await status(`${base}/readyz`, auth)) === 200 ? true : undefined,
      );
      const message = JSON.stringify({ conversation: 'doors', user: 'mallory', text: 'hi' });
      const post = { ...auth, 'content-type': 'application/json' };
      const forged = { ...post, host: `rebind.attacker.example:${port}` };
      expect(await status(`${base}/api/messages`, forged, 'POST', message)).toBe(403);
      expect(await status(`${base}/readyz`, { ...auth, host: 'rebind.attacker.example' })).toBe(403);
      expect(
        await status(`${base}/api/messages`, { 'content-type': 'application/json' }, 'POST', message),
      ).toBe(401);
      expect(await status(`${base}/api/messages`, post, 'POST', message)).toBe(202);
    } finally {
      await stop(service);
    }
  });
});

describe('the web API on loopback', () => {
  it('keeps /readyz and /metrics open without a token, behind the Host guard (SANDBOT_HTTP_ALLOWED_HOSTS)', async () => {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const service = sandbot('gateway', {
      SANDBOT_HTTP_PORT: String(port),
      SANDBOT_HTTP_ALLOWED_HOSTS: 'sandbot.test',
    });
    try {
      await eventually('GET /healthz answering 200', async () =>
        (await status(`${base}/healthz`)) === 200 ? true : undefined,
      );
      expect(await status(`${base}/metrics`)).toBe(200);
      // No worker has reported to this gateway alone: not ready, but readable without a token.
      expect(await status(`${base}/readyz`)).toBe(503);
      for (const host of [`localhost:${port}`, `[::1]:${port}`, `sandbot.test:${port}`]) {
        expect(await status(`${base}/metrics`, { host })).toBe(200);
        expect(await status(`${base}/`, { host })).toBe(200);
      }
      for (const host of [`rebind.attacker.example:${port}`, `sandbot.test.attacker.example:${port}`]) {
        expect(await status(`${base}/metrics`, { host })).toBe(403);
        expect(await status(`${base}/readyz`, { host })).toBe(403);
        expect(await status(`${base}/`, { host })).toBe(403);
      }
    } finally {
      await stop(service);
    }
  });
});

describe('open chat allowlists', () => {
  it('a Slack token with every Slack allowlist empty stops start-up, saying who could use the agent', async () => {
    const result = await refused('gateway', { SLACK_BOT_TOKEN: 'xoxb-1', SLACK_APP_TOKEN: 'xapp-1' });
    expect(result).toEqual({
      code: 1,
      lines: [
        expect.stringMatching(
          /^sandbot: SLACK_BOT_TOKEN is set .* every member of any Slack workspace that adds this app could use the agent\. .*SLACK_ALLOW_ALL=true/,
        ),
      ],
    });
  });

  it('a Discord token with every Discord allowlist empty stops `up` before its worker starts', async () => {
    const result = await refused('up', { DISCORD_TOKEN: 'bot-token', DISCORD_APPLICATION_ID: '1' });
    expect(result).toEqual({
      code: 1,
      lines: [
        expect.stringMatching(
          /^sandbot: DISCORD_TOKEN is set .* every member of any Discord server that adds this bot could use the agent\. .*DISCORD_ALLOW_ALL=true/,
        ),
      ],
    });
  });

  it('SLACK_ALLOW_ALL=true and DISCORD_ALLOW_ALL=true let the gateway start', async () => {
    const [slack, discord] = await Promise.all([startFakeSlack(), startFakeDiscord()]);
    const port = await freePort();
    const service = sandbot('gateway', {
      SANDBOT_HTTP_PORT: String(port),
      SANDBOT_WEB_CHAT: 'off',
      SLACK_BOT_TOKEN: slack.botToken,
      SLACK_APP_TOKEN: slack.appToken,
      SLACK_API_URL: slack.apiUrl,
      SLACK_ALLOW_ALL: 'true',
      DISCORD_TOKEN: discord.token,
      DISCORD_APPLICATION_ID: discord.applicationId,
      DISCORD_API_URL: discord.apiUrl,
      DISCORD_GUILD_IDS: discord.guild.id,
      DISCORD_ALLOW_ALL: 'true',
    });
    try {
      await eventually('GET /healthz answering 200', async () =>
        (await status(`http://127.0.0.1:${port}/healthz`)) === 200 ? true : undefined,
      );
      await stop(service);
    } finally {
      service.child.kill('SIGKILL');
      await Promise.all([slack.close(), discord.close()]);
    }
  });
});
