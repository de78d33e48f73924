import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../testkit/fakes/fake-slack.js';
import { personMessage } from '../../testkit/fakes/fake-slack-events.js';
import { type SlackHarness, startSlackHarness } from '../helpers/slack-harness.js';

/**
 * Socket Mode supervision with the real socket client: a dropped connection comes back by itself,
 * health reports the adapter down meanwhile, and events flow again afterwards.
 */

let h: SlackHarness;
beforeAll(async () => {
  h = await startSlackHarness('slack-sock', 'socket');
});
afterAll(async () => {
  await h?.stop();
});

async function roundTrip(text: string): Promise<void> {
  const m = personMessage(h.fake, { channel: 'D0SOCK', user: 'U0ALICE', text });
  await h.sender.event(m.message);
  await waitFor(`"${text}" queued`, async () => (await h.queued()).some((q) => q.text === text));
}

describe('Slack Socket Mode', () => {
  it('is healthy once connected', async () => {
    expect(h.adapter.mode).toBe('socket');
    expect(h.adapter.health()).toMatchObject({ ok: true, detail: expect.stringContaining('connected') });
    expect(h.fake.callsOf('apps.connections.open')).toHaveLength(1);
    await roundTrip('before the drop');
  });

  it('reports down while the connection is lost, reconnects by itself, and works again', async () => {
    const accepted = h.fake.socket.accepted;
    h.fake.socket.refusing = true; // Slack unreachable for a while: reconnect attempts fail
    h.fake.socket.dropAll();
    const down = await waitFor('health down', () => {
      const health = h.adapter.health();
      return health.ok ? undefined : health;
    });
    expect(down.detail).toMatch(/^Socket Mode (disconnected|reconnecting|connecting)/);
    await waitFor('a refused reconnect attempt', () => h.fake.socket.refused > 0);
    expect(h.adapter.health().ok).toBe(false);

    h.fake.socket.refusing = false;
    await waitFor('health up again', () => h.adapter.health().ok, 20_000);
    expect(h.fake.socket.accepted).toBe(accepted + 1);
    await roundTrip('after the drop');
  });

  it('reconnects when Slack asks it to (refresh_requested)', async () => {
    const accepted = h.fake.socket.accepted;
    h.fake.socket.askToReconnect();
    await waitFor(
      'a new connection',
      () => h.fake.socket.accepted === accepted + 1 && h.adapter.health().ok,
      20_000,
    );
    await roundTrip('after the refresh');
  });
});
