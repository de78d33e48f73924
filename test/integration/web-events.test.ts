import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebEventStream } from '../../adapters/web/event-stream.js';
import { registerWebRoutes } from '../../adapters/web/http-routes.js';
import { ConfigSchema } from '../../src/contracts/config/schema.js';
import { webConversationId } from '../../src/contracts/conversation/id.js';
import { OutboundEvent } from '../../src/contracts/protocol/outbound.js';
import { webKeys } from '../../src/contracts/redis/keys.js';
import { createHttpServer } from '../../src/gateway/http-server.js';
import { REDIS_URL } from '../../testkit/redis.js';

// Outbound events through the real Redis stream and the real SSE route, read by a real HTTP client.
const instance = `t-web-${randomBytes(4).toString('hex')}`;
const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
const events = new WebEventStream(redis, instance, { blockMs: 1000 });
let base = '';
let close: () => Promise<void>;

beforeAll(async () => {
  const config = ConfigSchema.parse({ SANDBOT_INSTANCE: instance });
  const logger = pino({ level: 'silent' });
  const app = createHttpServer({ config, logger, health: async () => ({ ok: true, checks: {} }) });
  registerWebRoutes(
    app,
    { submitter: { submit: async () => {} }, events },
    { config, logger, sseHeartbeatMs: 50 },
  );
  await app.listen({ host: '127.0.0.1', port: 0 });
  base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  close = () => app.close();
});

// A failed assertion must not leave a stream open for the next test to trip over.
const openStreams = new Set<AbortController>();
afterEach(() => {
  for (const abort of openStreams) abort.abort();
  openStreams.clear();
});

afterAll(async () => {
  await close();
  const keys = await redis.keys(`${instance}:*`);
  if (keys.length > 0) await redis.del(...keys);
  redis.disconnect();
});

function event(session: string, id: string, type: 'progress' | 'reply', text: string): OutboundEvent {
  return { id, conversation: webConversationId(session), platform: 'web', route: {}, type, text };
}

interface SseBlock {
  id?: string;
  data?: string;
  comments: string[];
}

/** A minimal SSE reader over fetch: enough to see exactly what a browser's EventSource would get. */
async function openStream(session: string, headers: Record<string, string> = {}, query = '') {
  const abort = new AbortController();
  openStreams.add(abort);
  const response = await fetch(`${base}/api/conversations/${session}/events${query}`, {
    headers,
    signal: abort.signal,
  });
  const reader = (response.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  async function nextBlock(): Promise<SseBlock> {
    for (;;) {
      const end = buffer.indexOf('\n\n');
      if (end >= 0) {
        const lines = buffer.slice(0, end).split('\n');
        buffer = buffer.slice(end + 2);
        const block: SseBlock = { comments: [] };
        for (const line of lines) {
          if (line.startsWith(': ')) block.comments.push(line.slice(2));
          else if (line.startsWith('id: ')) block.id = line.slice(4);
          else if (line.startsWith('data: ')) block.data = line.slice(6);
        }
        return block;
      }
      const { value, done } = await reader.read();
      if (done) throw new Error('the event stream ended');
      buffer += decoder.decode(value, { stream: true });
    }
  }
  async function nextEvent(): Promise<{ streamId: string; event: OutboundEvent }> {
    for (;;) {
      const block = await nextBlock();
      if (block.data === undefined) continue;
      expect(block.id).toMatch(/^\d+-\d+$/);
      return { streamId: block.id as string, event: OutboundEvent.parse(JSON.parse(block.data)) };
    }
  }
  return { response, nextBlock, nextEvent, close: () => abort.abort() };
}

async function webEventReaders(): Promise<number> {
  const list = (await redis.client('LIST')) as string;
  return list.split('\n').filter((line) => line.includes(` name=${instance}-web-events `)).length;
}

async function waitFor(condition: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`gave up waiting until ${what}`);
}

describe('web event stream over SSE', () => {
  it('streams delivered events in order, and an event id delivered twice only once', async () => {
    const stream = await openStream('order');
    expect(stream.response.status).toBe(200);
    expect(stream.response.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');

    expect(await events.deliver(event('order', 'turn1:p1', 'progress', 'running `ls`'))).toBe(true);
    expect(await events.deliver(event('order', 'turn1:r1', 'reply', 'done'))).toBe(true);
    expect(await events.deliver(event('order', 'turn1:p1', 'progress', 'running `ls`'))).toBe(false);
    expect(await events.deliver(event('order', 'turn2:r1', 'reply', 'second'))).toBe(true);

    const received = [await stream.nextEvent(), await stream.nextEvent(), await stream.nextEvent()];
    stream.close();
    expect(received.map((r) => r.event)).toEqual([
      event('order', 'turn1:p1', 'progress', 'running `ls`'),
      event('order', 'turn1:r1', 'reply', 'done'),
      event('order', 'turn2:r1', 'reply', 'second'),
    ]);
    expect(await redis.xlen(webKeys.events(instance, webConversationId('order')))).toBe(3);
  });

  it('starts a new subscriber at "now", not at the stream start', async () => {
    await events.deliver(event('fresh', 'old', 'reply', 'before the client came'));
    const stream = await openStream('fresh');
    await events.deliver(event('fresh', 'new', 'reply', 'after'));
    const first = await stream.nextEvent();
    stream.close();
    expect(first.event.id).toBe('new');
  });

  it('resumes after Last-Event-ID (header, or lastEventId in the query for a reloaded page)', async () => {
    const first = await openStream('resume');
    await events.deliver(event('resume', 'a', 'progress', 'a'));
    await events.deliver(event('resume', 'b', 'progress', 'b'));
    const a = await first.nextEvent();
    await first.nextEvent();
    first.close();
    await events.deliver(event('resume', 'c', 'reply', 'c, while nobody listened'));

    const again = await openStream('resume', { 'last-event-id': a.streamId });
    const resumed = [await again.nextEvent(), await again.nextEvent()];
    again.close();
    expect(resumed.map((r) => r.event.id)).toEqual(['b', 'c']);

    const reloaded = await openStream('resume', {}, `?lastEventId=${resumed[0]?.streamId}`);
    const next = await reloaded.nextEvent();
    reloaded.close();
    expect(next.event.id).toBe('c');
  });

  it("does not show one conversation's events on another's stream", async () => {
    const stream = await openStream('mine');
    await events.deliver(event('theirs', 'secret', 'reply', 'not for you'));
    await events.deliver(event('mine', 'sentinel', 'reply', 'for you'));
    const first = await stream.nextEvent();
    stream.close();
    expect(first.event.id).toBe('sentinel');
  });

  it('sends comment heartbeats while idle', async () => {
    const stream = await openStream('idle');
    const comments: string[] = [];
    while (!comments.includes('heartbeat')) comments.push(...(await stream.nextBlock()).comments);
    stream.close();
    expect(comments[0]).toBe('connected');
  });

  it("closes the subscriber's own Redis connection when the client leaves", async () => {
    // The streams of the tests above were closed too: their readers must all be gone.
    await waitFor(async () => (await webEventReaders()) === 0, 'earlier readers disconnected');
    const stream = await openStream('leaving');
    await waitFor(async () => (await webEventReaders()) === 1, 'the reader connected');
    stream.close();
    await waitFor(async () => (await webEventReaders()) === 0, 'the reader disconnected');
    expect(await webEventReaders()).toBe(0);
  });

  it('refuses a bad conversation name or Last-Event-ID with 400', async () => {
    const badName = await fetch(`${base}/api/conversations/${encodeURIComponent('a:b')}/events`);
    expect(badName.status).toBe(400);
    expect(((await badName.json()) as { error: string }).error).toMatch(/^conversation must be/);
    const badId = await fetch(`${base}/api/conversations/ok/events`, { headers: { 'last-event-id': 'x' } });
    expect(badId.status).toBe(400);
    expect(((await badId.json()) as { error: string }).error).toMatch(/Last-Event-ID/);
  });
});

describe('WebEventStream.deliver', () => {
  it('keeps the idempotency guard for a day and trims the stream to about 1000 entries', async () => {
    for (let i = 0; i < 1200; i += 100) {
      await Promise.all(
        Array.from({ length: 100 }, (_, j) => events.deliver(event('long', `e${i + j}`, 'progress', 'x'))),
      );
    }
    const length = await redis.xlen(webKeys.events(instance, webConversationId('long')));
    expect(length).toBeGreaterThanOrEqual(1000);
    expect(length).toBeLessThan(1200);
    const ttl = await redis.ttl(webKeys.delivered(instance, 'e0'));
    expect(ttl).toBeGreaterThan(86_000);
    expect(ttl).toBeLessThanOrEqual(86_400);
  });

  it('refuses an event of another platform', async () => {
    const slack = { ...event('x', 'y', 'reply', 'z'), platform: 'slack' as const };
    await expect(events.deliver(slack)).rejects.toThrow(/route it to its own adapter/);
  });
});
