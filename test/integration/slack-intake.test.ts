import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlobStore } from '../../src/shared/stores/blob-store.js';
import { waitFor } from '../../testkit/fakes/fake-slack.js';
import { personMessage, type Transport } from '../../testkit/fakes/fake-slack-events.js';
import { REDIS_URL } from '../../testkit/redis.js';
import { type SlackHarness, startSlackHarness } from '../helpers/slack-harness.js';

/**
 * Slack → queue, through the real Bolt app over both transports: which messages reach the agent, in
 * which conversation, and that Slack's retries and double deliveries queue one message.
 */

const CHANNEL = 'C0GENERAL';
const DM = 'D0ALICE';

describe.each<Transport>(['socket', 'http'])('Slack intake over %s', (transport) => {
  let h: SlackHarness;
  beforeAll(async () => {
    h = await startSlackHarness(`slack-in-${transport}`, transport, { SANDBOT_FILE_MAX_BYTES: '2048' });
  });
  afterAll(async () => {
    await h?.stop();
  });

  /** Waits until `count` messages are queued, then a little longer to catch any extra. */
  const queuedSettled = async (count: number) => {
    await waitFor(`${count} queued messages`, async () => (await h.queued()).length >= count);
    await new Promise((r) => setTimeout(r, 300));
    return h.queued();
  };

  it('queues a channel mention once, in the thread it starts, and reacts 👀', async () => {
    const before = (await h.queued()).length;
    const m = personMessage(h.fake, {
      channel: CHANNEL,
      user: 'U0ALICE',
      text: `<@${h.fake.botUserId}> list <files> & more`,
    });
    // Slack sends both events for a mention, and retries what it thinks was not acked.
    await h.sender.event(m.message);
    await h.sender.event(m.mention);
    await h.sender.event(m.mention, { retryNum: 1 });
    const queued = (await queuedSettled(before + 1)).slice(before);
    expect(queued).toHaveLength(1);
    expect(queued[0]).toMatchObject({
      id: `slack:${CHANNEL}:${m.ts}`,
      conversation: `slack:${h.fake.team}:${CHANNEL}:${m.ts}`,
      platform: 'slack',
      user: { id: 'U0ALICE', name: 'alice' },
      text: 'list <files> & more',
      route: { team: h.fake.team, channel: CHANNEL, thread_ts: m.ts, ts: m.ts },
    });
    await waitFor('👀 on the message', () => h.fake.reactionsOn(CHANNEL, m.ts).includes('eyes'));
  });

  it('takes later messages in that thread without a mention, and nothing outside it', async () => {
    const root = personMessage(h.fake, {
      channel: CHANNEL,
      user: 'U0ALICE',
      text: `<@${h.fake.botUserId}> start`,
    });
    await h.sender.event(root.mention);
    const before = (await queuedSettled(1)).length;
    await waitFor('the thread start queued', async () =>
      (await h.queued()).some((q) => q.id.endsWith(root.ts)),
    );
    const inThread = personMessage(h.fake, {
      channel: CHANNEL,
      user: 'U0BOB',
      text: 'and also this',
      thread_ts: root.ts,
    });
    const otherThread = personMessage(h.fake, {
      channel: CHANNEL,
      user: 'U0BOB',
      text: 'unrelated',
      thread_ts: h.fake.nextTs(),
    });
    const topLevel = personMessage(h.fake, { channel: CHANNEL, user: 'U0BOB', text: 'just chatting' });
    await h.sender.event(otherThread.message);
    await h.sender.event(topLevel.message);
    await h.sender.event(inThread.message);
    const queued = await queuedSettled(before + 1);
    const added = queued.filter((q) =>
      [inThread.ts, otherThread.ts, topLevel.ts].some((ts) => q.id.endsWith(ts)),
    );
    expect(added).toHaveLength(1);
    expect(added[0]).toMatchObject({
      conversation: `slack:${h.fake.team}:${CHANNEL}:${root.ts}`,
      text: 'and also this',
      user: { id: 'U0BOB', name: 'bob' },
      route: { thread_ts: root.ts, ts: inThread.ts },
    });
  });

  it('makes a DM one conversation, answered at the top level, and a DM thread its own', async () => {
    const top = personMessage(h.fake, { channel: DM, user: 'U0ALICE', text: 'hi there' });
    const thread = personMessage(h.fake, {
      channel: DM,
      user: 'U0ALICE',
      text: 'in a thread',
      thread_ts: top.ts,
    });
    await h.sender.event(top.message);
    await h.sender.event(thread.message);
    const queued = await waitFor('both DM messages', async () => {
      const found = (await h.queued()).filter((q) => q.route.channel === DM);
      return found.length >= 2 ? found : undefined;
    });
    const byText = Object.fromEntries(queued.map((q) => [q.text, q]));
    expect(byText['hi there']?.conversation).toBe(`slack:${h.fake.team}:${DM}:dm`);
    expect(byText['hi there']?.route.thread_ts).toBeUndefined();
    expect(byText['in a thread']?.conversation).toBe(`slack:${h.fake.team}:${DM}:${top.ts}`);
    expect(byText['in a thread']?.route.thread_ts).toBe(top.ts);
  });

  it('ignores its own messages, other bots, and edits', async () => {
    const before = (await h.queued()).length;
    const own = personMessage(h.fake, { channel: DM, user: h.fake.botUserId, text: 'my own reply' });
    const bot = personMessage(h.fake, { channel: DM, user: 'U0OTHERBOT', text: 'beep', bot_id: 'B0OTHER' });
    const edit = personMessage(h.fake, {
      channel: DM,
      user: 'U0ALICE',
      text: 'edited',
      subtype: 'message_changed',
    });
    for (const m of [own, bot, edit]) await h.sender.event(m.message);
    const marker = personMessage(h.fake, { channel: DM, user: 'U0ALICE', text: 'marker' });
    await h.sender.event(marker.message);
    const queued = (await queuedSettled(before + 1)).slice(before);
    expect(queued.map((q) => q.text)).toEqual(['marker']);
  });

  it('downloads attachments into the blob store and refuses files over the size cap politely', async () => {
    const small = h.fake.hostFile('notes.txt', Buffer.from('hello from a file'));
    const big = h.fake.hostFile('huge.bin', Buffer.alloc(4096, 1), { mimetype: 'application/octet-stream' });
    const m = personMessage(h.fake, { channel: DM, user: 'U0BOB', text: 'read these', files: [small, big] });
    await h.sender.event(m.message);
    const queued = await waitFor('the message with files', async () =>
      (await h.queued()).find((q) => q.id.endsWith(m.ts)),
    );
    expect(queued.files).toHaveLength(1);
    expect(queued.files[0]).toMatchObject({ name: 'notes.txt', size: 17 });
    const redis = new Redis(REDIS_URL);
    try {
      const bytes = await new BlobStore(redis, h.config.SANDBOT_INSTANCE).get(queued.files[0]!.blobKey);
      expect(bytes?.toString()).toBe('hello from a file');
    } finally {
      redis.disconnect();
    }
    const note = await waitFor('a note about the big file', () =>
      h.fake.ephemerals.find((e) => e.user === 'U0BOB' && String(e.text).includes('huge.bin')),
    );
    expect(note.text).toContain('2 KB');
  });

  it('acks an event before its work is done (the work happens after the ack)', async () => {
    // A first-time sender's name is looked up before queueing; hold that lookup.
    const user = transport === 'socket' ? 'U0CAROL' : 'U0DAVE';
    const release = h.fake.hold('users.info');
    const m = personMessage(h.fake, { channel: 'D0OTHER', user, text: 'quick' });
    const isQueued = async () => (await h.queued()).some((q) => q.id.endsWith(m.ts));
    try {
      expect(await h.sender.event(m.message)).toBe(200);
      await waitFor('the held users.info call', () => h.fake.heldCalls('users.info') > 0);
      expect(await isQueued()).toBe(false);
    } finally {
      release();
    }
    await waitFor('the message queued after the ack', isQueued);
  });

  if (transport === 'http') {
    it('rejects a bad signature or a stale timestamp, and queues nothing from them', async () => {
      const before = (await h.queued()).length;
      const forged = personMessage(h.fake, { channel: DM, user: 'U0MALLORY', text: 'forged' });
      expect(await h.sender.event(forged.message, { secret: 'not-the-secret' })).toBe(401);
      expect(await h.sender.event(forged.message, { timestamp: Math.floor(Date.now() / 1000) - 600 })).toBe(
        401,
      );
      await new Promise((r) => setTimeout(r, 300));
      expect((await h.queued()).length).toBe(before);
    });
  }
});

describe('Slack allowlists', () => {
  let h: SlackHarness;
  beforeAll(async () => {
    h = await startSlackHarness('slack-acl', 'socket', {
      SLACK_ALLOWED_USERS: 'U0ALICE',
      SLACK_ALLOWED_CHANNELS: `${CHANNEL},${DM}`,
    });
  });
  afterAll(async () => {
    await h?.stop();
  });

  it('answers a person outside the allowlist once, records every refusal, and queues nothing', async () => {
    for (const text of ['first try', 'second try']) {
      const m = personMessage(h.fake, {
        channel: CHANNEL,
        user: 'U0MALLORY',
        text: `<@${h.fake.botUserId}> ${text}`,
      });
      await h.sender.event(m.mention);
    }
    const elsewhere = personMessage(h.fake, {
      channel: 'C0RANDOM',
      user: 'U0ALICE',
      text: `<@${h.fake.botUserId}> hi`,
    });
    await h.sender.event(elsewhere.mention);
    const refusals = await waitFor('three audit records', () => {
      const found = h.logs.filter((l) => l.audit === 'access_refused');
      return found.length >= 3 ? found : undefined;
    });
    expect(refusals.map((r) => [r.user, r.reason])).toEqual([
      ['U0MALLORY', 'user'],
      ['U0MALLORY', 'user'],
      ['U0ALICE', 'channel'],
    ]);
    expect(refusals[0]?.level).toBe(40); // warn
    await waitFor('two refusal answers', () => h.fake.ephemerals.length >= 2);
    const toMallory = h.fake.ephemerals.filter((e) => e.user === 'U0MALLORY');
    expect(toMallory).toHaveLength(1);
    expect(String(toMallory[0]?.text)).toMatch(/allowlist/);
    expect(await h.queued()).toEqual([]);
  });

  it('lets an allowed person through', async () => {
    const m = personMessage(h.fake, {
      channel: CHANNEL,
      user: 'U0ALICE',
      text: `<@${h.fake.botUserId}> hello`,
    });
    await h.sender.event(m.mention);
    await waitFor('alice queued', async () => (await h.queued()).some((q) => q.user.id === 'U0ALICE'));
  });
});
