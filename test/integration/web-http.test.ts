import { randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebEventStream } from '../../adapters/web/event-stream.js';
import { registerWebRoutes } from '../../adapters/web/http-routes.js';
import type { InboundSubmitter } from '../../adapters/web/ports.js';
import { ConfigSchema } from '../../src/contracts/config/schema.js';
import { webConversationId } from '../../src/contracts/conversation/id.js';
import { InboundMessage } from '../../src/contracts/protocol/inbound.js';
import { createHttpServer } from '../../src/gateway/http-server.js';
import { REDIS_URL } from '../../testkit/redis.js';

// The web API against a real listening server and real Redis. What reaches the queue port is recorded
// in a Redis list, so the test asserts what the queue would actually receive.
const instance = `t-web-${randomBytes(4).toString('hex')}`;
const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
const logger = pino({ level: 'silent' });
const health = async () => ({ ok: true, checks: {} });
const TOKEN = 'tok-0123456789';

class RedisListSubmitter implements InboundSubmitter {
  constructor(
    private readonly client: Redis,
    readonly key: string,
  ) {}
  async submit(message: InboundMessage): Promise<void> {
    await this.client.rpush(this.key, JSON.stringify(message));
  }
  async received(): Promise<InboundMessage[]> {
    const items = await redis.lrange(this.key, 0, -1);
    return items.map((item) => InboundMessage.parse(JSON.parse(item)));
  }
}

async function startServer(env: Record<string, string>, submitter: InboundSubmitter) {
  const config = ConfigSchema.parse({ SANDBOT_INSTANCE: instance, SANDBOT_MAX_MESSAGE_CHARS: '50', ...env });
  const app = createHttpServer({ config, logger, health });
  registerWebRoutes(app, { submitter, events: new WebEventStream(redis, instance) }, { config, logger });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  return { app, base: `http://127.0.0.1:${port}` };
}

const submitter = new RedisListSubmitter(redis, `${instance}:test:submitted`);
const deadRedis = new Redis('redis://127.0.0.1:1', {
  lazyConnect: true,
  enableOfflineQueue: false,
  maxRetriesPerRequest: 0,
  retryStrategy: () => null,
});
deadRedis.on('error', () => {}); // refused connections are the point here
let open: Awaited<ReturnType<typeof startServer>>;
let guarded: Awaited<ReturnType<typeof startServer>>;
let broken: Awaited<ReturnType<typeof startServer>>;

beforeAll(async () => {
  open = await startServer({}, submitter);
  guarded = await startServer({ SANDBOT_API_TOKEN: TOKEN }, submitter);
  broken = await startServer({}, new RedisListSubmitter(deadRedis, `${instance}:test:never`));
});

afterAll(async () => {
  await Promise.all([open.app.close(), guarded.app.close(), broken.app.close()]);
  const keys = await redis.keys(`${instance}:*`);
  if (keys.length > 0) await redis.del(...keys);
  deadRedis.disconnect();
  redis.disconnect();
});

function post(base: string, body: string, headers: Record<string, string> = {}) {
  return fetch(`${base}/api/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body,
  });
}

async function errorOf(response: Response): Promise<string> {
  const body = (await response.json()) as { error: string };
  expect(typeof body.error).toBe('string');
  return body.error;
}

describe('POST /api/messages', () => {
  it('accepts a message, answers 202 and hands the queue an InboundMessage', async () => {
    const before = new Date();
    const response = await post(
      open.base,
      JSON.stringify({ conversation: 'happy_path-1', user: 'ada', text: 'hello there' }),
    );
    expect(response.status).toBe(202);
    const body = (await response.json()) as { conversation: string; messageId: string };
    expect(body.conversation).toBe('happy_path-1');
    expect(body.messageId).toMatch(/^[0-9a-f-]{36}$/);

    const [message, ...rest] = await submitter.received();
    expect(rest).toEqual([]);
    expect(message).toMatchObject({
      id: body.messageId,
      conversation: webConversationId('happy_path-1'),
      platform: 'web',
      user: { id: 'ada' },
      text: 'hello there',
      route: {},
      files: [],
    });
    expect(new Date(message?.receivedAt ?? 0).getTime()).toBeGreaterThanOrEqual(before.getTime() - 1000);
  });

  it.each([
    ['a missing field', { conversation: 'c1', user: 'ada' }, /text: is required/],
    [
      'an unknown field',
      { conversation: 'c1', user: 'ada', text: 'hi', admin: true },
      /unknown field "admin"/,
    ],
    [
      'text over SANDBOT_MAX_MESSAGE_CHARS',
      { conversation: 'c1', user: 'ada', text: 'x'.repeat(51) },
      /text: .*50/,
    ],
    ['empty text', { conversation: 'c1', user: 'ada', text: '  ' }, /text: must not be empty/],
    [
      'a bad conversation name',
      { conversation: 'no spaces!', user: 'ada', text: 'hi' },
      /^conversation must be/,
    ],
    [
      'a conversation of the wrong type',
      { conversation: 7, user: 'ada', text: 'hi' },
      /conversation: must be a string/,
    ],
    ['a JSON array', [1, 2], /body: must be a JSON object/],
  ])('refuses %s with 400 naming the field', async (_name, body, reason) => {
    const response = await post(open.base, JSON.stringify(body));
    expect(response.status).toBe(400);
    expect(await errorOf(response)).toMatch(reason);
  });

  it('refuses malformed JSON with 400 in words', async () => {
    const response = await post(open.base, '{"conversation": "c1", ');
    expect(response.status).toBe(400);
    expect(await errorOf(response)).toMatch(/not valid JSON/);
  });

  it('refuses an empty JSON body with 400', async () => {
    const response = await post(open.base, '');
    expect(response.status).toBe(400);
    expect(await errorOf(response)).toMatch(/body is empty/);
  });

  it('refuses another content-type with 415 (which also keeps cross-site form posts out)', async () => {
    for (const type of ['text/plain', 'application/x-www-form-urlencoded']) {
      const response = await post(open.base, 'conversation=c1&user=a&text=hi', { 'content-type': type });
      expect(response.status).toBe(415);
      expect(await errorOf(response)).toMatch(/content-type must be application\/json/);
    }
  });

  it('refuses a body over the size limit with 413 in words', async () => {
    const response = await post(
      open.base,
      JSON.stringify({ conversation: 'c1', user: 'ada', text: 'x'.repeat(500_000) }),
    );
    expect(response.status).toBe(413);
    expect(await errorOf(response)).toMatch(
      /body is larger than \d+ bytes: text may be at most 50 characters/,
    );
  });

  it('answers 503 when the queue cannot take the message', async () => {
    const response = await post(broken.base, JSON.stringify({ conversation: 'c1', user: 'ada', text: 'hi' }));
    expect(response.status).toBe(503);
    expect(await errorOf(response)).toMatch(/queue (is )?unavailable/);
  });

  it('nothing refused above reached the queue', async () => {
    expect((await submitter.received()).map((m) => m.text)).toEqual(['hello there']);
  });
});

describe('API token', () => {
  const message = JSON.stringify({ conversation: 'tok', user: 'ada', text: 'with token' });

  it('is required on /api/* when SANDBOT_API_TOKEN is set', async () => {
    const attempts: Record<string, string>[] = [
      {},
      { authorization: 'Bearer wrong' },
      { authorization: TOKEN },
    ];
    for (const headers of attempts) {
      const response = await post(guarded.base, message, headers);
      expect(response.status).toBe(401);
      expect(await errorOf(response)).toMatch(/API token/);
    }
    const events = await fetch(`${guarded.base}/api/conversations/tok/events`);
    expect(events.status).toBe(401);
  });

  it('lets a request with the right bearer token through', async () => {
    const response = await post(guarded.base, message, { authorization: `Bearer ${TOKEN}` });
    expect(response.status).toBe(202);
    expect((await submitter.received()).map((m) => m.text)).toContain('with token');
  });

  it('accepts ?token= on the events route only', async () => {
    const viaQuery = await fetch(`${guarded.base}/api/messages?token=${TOKEN}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: message,
    });
    expect(viaQuery.status).toBe(401);

    const abort = new AbortController();
    const events = await fetch(`${guarded.base}/api/conversations/tok/events?token=${TOKEN}`, {
      signal: abort.signal,
    });
    expect(events.status).toBe(200);
    expect(events.headers.get('content-type')).toMatch(/^text\/event-stream/);
    abort.abort();
  });

  it('leaves /healthz and the page open', async () => {
    expect((await fetch(`${guarded.base}/healthz`)).status).toBe(200);
    const page = await fetch(`${guarded.base}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('data-token-required="true"');
  });
});

describe('other routes', () => {
  it('GET /healthz answers ok', async () => {
    const response = await fetch(`${open.base}/healthz`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: 'ok' });
  });

  it('GET / serves the self-contained chat page', async () => {
    const response = await fetch(`${open.base}/`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(response.headers.get('content-security-policy')).toMatch(
      /default-src 'none'; script-src 'sha256-/,
    );
    const html = await response.text();
    expect(html).toMatch(/^<!doctype html>/);
    expect(html).toContain('<label for="text">Message</label>');
    expect(html).toContain('aria-live="polite"');
    expect(html).toContain('new EventSource(');
    expect(html).toContain('data-token-required="false"');
    expect(html).not.toMatch(/<(script|link|img)[^>]+(src|href)="(https?:)?\/\//); // no external assets
  });

  it('GET /readyz reports the health checks, 503 when one fails', async () => {
    const ready = await fetch(`${open.base}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready', ok: true, checks: {} });

    const config = ConfigSchema.parse({ SANDBOT_INSTANCE: instance });
    const failing = { ok: false, checks: { redis: { ok: false, detail: 'connection refused' } } };
    const app = createHttpServer({ config, logger, health: async () => failing });
    await app.listen({ host: '127.0.0.1', port: 0 });
    try {
      const response = await fetch(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}/readyz`);
      expect(response.status).toBe(503);
      expect(await response.json()).toEqual({ status: 'not ready', ...failing });
    } finally {
      await app.close();
    }
  });

  it('unknown routes answer 404 as JSON', async () => {
    const response = await fetch(`${open.base}/nope?token=secret`);
    expect(response.status).toBe(404);
    expect(await errorOf(response)).toBe('no route GET /nope');
  });

  it('refuses requests addressed to a non-loopback name (DNS-rebinding guard)', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(`${open.base}/`, { headers: { host: 'attacker.example:80' } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(403);
  });

  it('does not serve the web chat when it is disabled', async () => {
    const config = ConfigSchema.parse({ SANDBOT_INSTANCE: instance });
    const app = createHttpServer({ config, logger, health });
    await app.listen({ host: '127.0.0.1', port: 0 });
    try {
      const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
      expect((await fetch(`${base}/`)).status).toBe(404);
      expect((await post(base, '{}')).status).toBe(404);
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
    } finally {
      await app.close();
    }
  });
});
