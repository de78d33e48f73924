import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebEventStream } from '../../adapters/web/event-stream.js';
import { registerWebRoutes } from '../../adapters/web/http-routes.js';
import { NoticeThrottle } from '../../src/gateway/chat-throttles.js';
import { createHttpServer } from '../../src/gateway/http-server.js';
import { RateLimiter } from '../../src/gateway/rate-limiter.js';
import { rateLimitSettings } from '../../src/gateway/rate-limits.js';
import { ConversationStore } from '../../src/shared/queue/conversation-store.js';
import { InboundQueue } from '../../src/shared/queue/inbound-queue.js';
import { waitFor } from '../../testkit/fakes/fake-slack.js';
import { personMessage } from '../../testkit/fakes/fake-slack-events.js';
import { dropInstanceKeys, REDIS_URL, testInstance } from '../../testkit/redis.js';
import { type DiscordHarness, startDiscordHarness } from '../helpers/discord-harness.js';
import { queuedMessages } from '../helpers/queued.js';
import { type SlackHarness, startSlackHarness } from '../helpers/slack-harness.js';
import { openSse, type SseClient } from '../helpers/sse.js';
import { testConfig } from '../helpers/stack.js';

/**
 * A burst from one person gets 429 (web) or one notice in the channel (Slack, Discord); what was
 * accepted is queued exactly once; someone else is unaffected; after the window the person goes on.
 * Counted in Redis; the clock is the limiter's own, moved past the window instead of waiting.
 */

const BURST = 25;
const PER_MINUTE = 20;
let offset = 0;
const clock = () => Date.now() + offset;
const later = (ms: number) => {
  offset += ms;
};

describe('rate limits on the web API', () => {
  const config = testConfig(testInstance('limits-web'), {
    SANDBOT_USER_CONVERSATIONS_PER_HOUR: '3',
    SANDBOT_EVENT_STREAMS_PER_CONVERSATION: '2',
    SANDBOT_EVENT_STREAMS_TOTAL: '3',
  });
  const instance = config.SANDBOT_INSTANCE;
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  const inbound = new InboundQueue(redis, new ConversationStore(redis, instance), instance);
  const limits = new RateLimiter(
    redis,
    instance,
    rateLimitSettings(config),
    new NoticeThrottle(redis),
    clock,
  );
  const app = createHttpServer({
    config,
    logger: pino({ level: 'silent' }),
    health: async () => ({ ok: true, checks: {} }),
  });
  let base = '';

  beforeAll(async () => {
    const submitter = {
      submit: async (m: Parameters<InboundQueue['submit']>[0]) => void (await inbound.submit(m)),
    };
    registerWebRoutes(
      app,
      { submitter, events: new WebEventStream(redis, instance), limits },
      {
        config,
        logger: pino({ level: 'silent' }),
      },
    );
    await app.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await app.close();
    await inbound.close();
    redis.disconnect();
    await dropInstanceKeys(instance);
  });

  const post = (user: string, conversation: string, text = 'hi') =>
    fetch(`${base}/api/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ conversation, user, text }),
    });
  const queuedFrom = async (user: string) =>
    (await queuedMessages(inbound, redis, instance)).filter((m) => m.user.id === user);

  it('takes 20 messages a minute from one person, refuses the rest with 429 and Retry-After', async () => {
    const responses = await Promise.all(
      Array.from({ length: BURST }, (_, i) => post('alice', 'burst', `message ${i}`)),
    );
    const accepted = responses.filter((r) => r.status === 202);
    const refused = responses.filter((r) => r.status === 429);
    expect([accepted.length, refused.length]).toEqual([PER_MINUTE, BURST - PER_MINUTE]);
    for (const r of refused) {
      const wait = Number(r.headers.get('retry-after'));
      expect(wait).toBeGreaterThanOrEqual(1);
      expect(wait).toBeLessThanOrEqual(60);
      expect(((await r.json()) as { error: string }).error).toContain('20 a minute');
    }
    const ids = await Promise.all(
      accepted.map(async (r) => ((await r.json()) as { messageId: string }).messageId),
    );
    const queued = await queuedFrom('alice');
    // Each accepted message queued exactly once, nothing refused queued.
    expect(queued.map((m) => m.id).sort()).toEqual(ids.sort());

    expect((await post('bob', 'burst-bob')).status).toBe(202);
    expect((await post('alice', 'burst', 'too soon')).status).toBe(429);
    later(61_000);
    expect((await post('alice', 'burst', 'after the minute')).status).toBe(202);
    expect((await queuedFrom('alice')).map((m) => m.text)).toContain('after the minute');
  });

  it('takes 3 new conversations an hour from one person (settings), but any number in known ones', async () => {
    for (const c of ['c1', 'c2', 'c3']) expect((await post('carol', c)).status).toBe(202);
    const refused = await post('carol', 'c4');
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(3500);
    expect(((await refused.json()) as { error: string }).error).toContain('3 conversations');
    expect((await post('carol', 'c1', 'more in a known one')).status).toBe(202);
    expect((await post('dave', 'd1')).status).toBe(202);
    later(3_601_000);
    expect((await post('carol', 'c4')).status).toBe(202);
  });

  it('caps open event streams per conversation and in all, with 429', async () => {
    const url = (c: string) => `${base}/api/conversations/${c}/events`;
    const streams: SseClient[] = [await openSse(url('s1')), await openSse(url('s1'))];
    try {
      const third = await fetch(url('s1'));
      expect(third.status).toBe(429);
      expect(third.headers.get('retry-after')).toMatch(/^\d+$/);
      expect(((await third.json()) as { error: string }).error).toContain('this conversation');
      streams.push(await openSse(url('s2')));
      const overall = await fetch(url('s3'));
      expect(overall.status).toBe(429);
      expect(((await overall.json()) as { error: string }).error).toContain('on this server');
      // A closed stream frees its slot.
      streams.shift()?.close();
      const reopened = await waitFor('a freed slot', async () => {
        const response = await fetch(url('s1'));
        if (response.status === 200) return response;
        await response.body?.cancel();
        return undefined;
      });
      await reopened.body?.cancel();
    } finally {
      for (const s of streams) s.close();
    }
  });
});

describe('rate limits in Slack', () => {
  let h: SlackHarness;
  beforeAll(async () => {
    h = await startSlackHarness('limits-slack', 'socket', {}, clock);
  });
  afterAll(async () => {
    await h?.stop();
  });

  it('takes 20 messages a minute, tells the person once, leaves others alone, and takes more after', async () => {
    const DM = 'D0ALICE';
    const sent = [];
    for (let i = 0; i < BURST; i += 1) {
      const m = personMessage(h.fake, { channel: DM, user: 'U0ALICE', text: `message ${i}` });
      sent.push(m.ts);
      await h.sender.event(m.message);
    }
    const bob = personMessage(h.fake, { channel: 'D0BOB', user: 'U0BOB', text: 'hello' });
    await h.sender.event(bob.message);
    await waitFor('bob queued', async () => (await h.queued()).some((m) => m.user.id === 'U0BOB'));
    await new Promise((r) => setTimeout(r, 300));
    const alice = (await h.queued()).filter((m) => m.user.id === 'U0ALICE');
    expect(alice.map((m) => m.id)).toEqual(sent.slice(0, PER_MINUTE).map((ts) => `slack:${DM}:${ts}`));
    const notices = h.fake.ephemerals.filter((e) => e.user === 'U0ALICE');
    expect(notices).toHaveLength(1);
    expect(String(notices[0]?.text)).toContain('20 a minute');
    expect(notices[0]?.channel).toBe(DM);

    later(61_000);
    const again = personMessage(h.fake, { channel: DM, user: 'U0ALICE', text: 'after the minute' });
    await h.sender.event(again.message);
    await waitFor('the later message queued', async () =>
      (await h.queued()).some((m) => m.text === 'after the minute'),
    );
  });
});

describe('rate limits in Discord', () => {
  let h: DiscordHarness;
  beforeAll(async () => {
    h = await startDiscordHarness(() => ({}), {}, clock);
  });
  afterAll(async () => {
    await h?.stop();
  });

  it('takes 20 messages a minute, tells the person once in the channel, and takes more after', async () => {
    const { fake } = h;
    const dm = fake.dmChannel(fake.users.alice);
    const sent = Array.from({ length: BURST }, (_, i) =>
      fake.userMessage({ channelId: dm.id, content: `message ${i}` }),
    );
    const bobDm = fake.dmChannel(fake.users.bob);
    const bob = fake.userMessage({ channelId: bobDm.id, content: 'hello', author: fake.users.bob });
    await h.waitForQueued((m) => m.id === bob.id, 'bob');
    await h.waitForQueued((m) => m.id === sent[PER_MINUTE - 1]?.id, 'the 20th');
    await waitFor('the notice', () => fake.botMessages(dm.id).length > 0);
    await new Promise((r) => setTimeout(r, 500));
    const alice = (await h.queued()).filter((m) => m.user.id === fake.users.alice.id);
    expect(alice.map((m) => m.id).sort()).toEqual(
      sent
        .slice(0, PER_MINUTE)
        .map((m) => m.id)
        .sort(),
    );
    const notices = fake.botMessages(dm.id);
    expect(notices).toHaveLength(1);
    expect(notices[0]?.content).toContain('20 a minute');

    // While limited, `/ask` is refused in its own response, and `/stop` still works.
    const ask = fake.command({ name: 'ask', channelId: dm.id, options: { task: 'one more' } });
    const refused = await fake.waitFor(
      () => (ask.original?.content ? ask.original : undefined),
      'the /ask answer',
    );
    expect(refused.content).toContain('20 a minute');
    const stop = fake.command({ name: 'stop', channelId: dm.id });
    const stopped = await fake.waitFor(
      () => (stop.original?.content ? stop.original : undefined),
      'the /stop answer',
    );
    expect(stopped.content).toContain('Nothing is running');

    later(61_000);
    const again = fake.userMessage({ channelId: dm.id, content: 'after the minute' });
    await h.waitForQueued((m) => m.id === again.id, 'the later message');
    expect((await h.queued()).some((m) => m.id === ask.id)).toBe(false);
  });
});
