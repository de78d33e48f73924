import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDiscordAdapter } from '../../adapters/discord/discord-adapter.js';
import { createLogger } from '../../src/contracts/log/logger.js';
import { startFakeDiscord } from '../../testkit/fakes/fake-discord.js';
import { testInstance } from '../../testkit/redis.js';
import { type DiscordHarness, startDiscordHarness } from '../helpers/discord-harness.js';
import { testConfig } from '../helpers/stack.js';

/**
 * The supervised gateway connection: health follows the socket, drops are resumed (events sent while
 * down are replayed), closes are reconnected, a close discord.js gives up on replaces the client, and
 * a shard stuck connecting is replaced too, all without restarting the process.
 */

let h: DiscordHarness;

beforeAll(async () => {
  h = await startDiscordHarness(() => ({}), { stuckAfterMs: 1500 });
});

afterAll(async () => {
  await h?.stop();
});

async function waitForHealth(ok: boolean) {
  return h.fake.waitFor(
    () => (h.adapter.health().ok === ok ? h.adapter.health() : undefined),
    `health ok=${ok}`,
  );
}

describe('discord adapter: connection', () => {
  it('reads down while the socket is gone, resumes, and gets the events sent meanwhile', async () => {
    const { fake } = h;
    expect(h.adapter.health().ok).toBe(true);
    fake.gateway.hold(true);
    fake.gateway.closeSocket(4000);
    expect(await waitForHealth(false)).toEqual({ ok: false, detail: 'reconnecting' });
    const missed = fake.userMessage({
      channelId: fake.dmChannel(fake.users.bob).id,
      content: 'sent while down',
      author: fake.users.bob,
    });
    fake.gateway.hold(false);
    await waitForHealth(true);
    await h.waitForQueued((m) => m.id === missed.id, 'the replayed message');
    expect(fake.gateway.resumes).toHaveLength(1);
    expect(fake.gateway.identifies).toHaveLength(1);
  });

  it('resumes after the TCP connection drops without a close frame', async () => {
    const { fake } = h;
    fake.gateway.dropSocket();
    await fake.waitFor(() => fake.gateway.resumes.length === 2, 'the second resume');
    await waitForHealth(true);
    const after = fake.userMessage({
      channelId: fake.dmChannel(fake.users.bob).id,
      content: 'after the drop',
      author: fake.users.bob,
    });
    await h.waitForQueued((m) => m.id === after.id, 'a message after the drop');
  });

  it('identifies afresh after a normal close', async () => {
    const { fake } = h;
    fake.gateway.closeSocket(1000);
    await fake.waitFor(() => fake.gateway.identifies.length === 2, 'a new IDENTIFY');
    await waitForHealth(true);
    const after = fake.userMessage({
      channelId: fake.dmChannel(fake.users.bob).id,
      content: 'after the close',
      author: fake.users.bob,
    });
    await h.waitForQueued((m) => m.id === after.id, 'a message after the close');
  });

  it('replaces the client after a close discord.js will not recover from', async () => {
    const { fake } = h;
    fake.gateway.closeSocket(4014);
    const down = await waitForHealth(false);
    expect(down.detail).toContain('close code 4014');
    await fake.waitFor(() => fake.gateway.identifies.length === 3, 'the new client’s IDENTIFY');
    await waitForHealth(true);
    const after = fake.userMessage({
      channelId: fake.channels.general.id,
      content: 'still there?',
      mention: true,
    });
    await h.waitForQueued((m) => m.id === after.id, 'a message to the new client');
  });

  it('replaces a client stuck connecting', async () => {
    const { fake } = h;
    fake.gateway.hold(true);
    fake.gateway.closeSocket(4000);
    await waitForHealth(false);
    const clients = () => h.logs.filter((l) => l.msg === 'discord: connecting a new client').length;
    const before = clients();
    await fake.waitFor(
      () => h.logs.some((l) => String(l.msg).includes('replacing the client')),
      'the watchdog',
      15_000,
    );
    await fake.waitFor(() => clients() > before, 'the new client', 15_000);
    fake.gateway.hold(false);
    await waitForHealth(true);
    const after = fake.userMessage({
      channelId: fake.dmChannel(fake.users.bob).id,
      content: 'unstuck',
      author: fake.users.bob,
    });
    await h.waitForQueued((m) => m.id === after.id, 'a message after the watchdog');
    expect(fake.gateway.identifies.length).toBeGreaterThanOrEqual(4);
  });

  it('refuses to start with a token Discord rejects, saying what to do', async () => {
    const fake = await startFakeDiscord();
    try {
      const config = testConfig(testInstance('discord-token'), {
        DISCORD_TOKEN: 'not-the-token',
        DISCORD_API_URL: fake.apiUrl,
        SANDBOT_WEB_CHAT: 'off',
      });
      const adapter = createDiscordAdapter({ ...h.deps, config, logger: createLogger(config) });
      await expect(adapter.start()).rejects.toThrow(/rejected DISCORD_TOKEN/);
      expect(adapter.health()).toMatchObject({
        ok: false,
        detail: expect.stringContaining('token rejected'),
      });
      await adapter.stop();
    } finally {
      await fake.close();
    }
  });
});
