import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeOllama, startFakeOllama } from '../../testkit/fakes/fake-ollama.js';
import { cleanInstance } from '../../testkit/instance.js';
import { freePort } from '../../testkit/ports.js';
import { testInstance } from '../../testkit/redis.js';
import { OwnRedis } from '../helpers/redis-server.js';
import { openSse, postMessage } from '../helpers/sse.js';
import { startStack, testConfig } from '../helpers/stack.js';

/**
 * Redis restarts during a run (with append-only persistence, as the README recommends): nothing that was
 * accepted is lost, and the gateway and worker reconnect by themselves. This file runs its own
 * redis-server on a free port (OwnRedis), so the shared one is never disturbed.
 */

let dir: string;
let redisServer: OwnRedis;
let ollama: FakeOllama;
let stack: Awaited<ReturnType<typeof startStack>>;
let config: ReturnType<typeof testConfig>;

const startRedis = () => redisServer.start();
const stopRedis = async () => redisServer?.stop();

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sandbot-redis-'));
  redisServer = new OwnRedis(await freePort(), dir);
  await startRedis();
  ollama = await startFakeOllama({ models: ['qwen2.5:7b'], script: () => ({ reply: 'answered' }) });
  config = testConfig(testInstance('redis'), {
    SANDBOT_REDIS_URL: redisServer.url,
    OLLAMA_HOST: ollama.url,
  });
  stack = await startStack(config);
});

afterAll(async () => {
  await stack?.stop();
  await cleanInstance(config).catch(() => undefined);
  await stopRedis();
  await ollama?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('Redis restart', () => {
  it('loses no accepted message and needs no restart of sandbot', async () => {
    let calls = 0;
    ollama.setScript((request) => {
      calls += 1;
      const last = request.messages.at(-1)?.content ?? '';
      return calls === 1
        ? { hold: 'during-restart', reply: `answer to ${last}` }
        : { reply: `answer to ${last}` };
    });
    const before = await openSse(`${stack.url}/api/conversations/survivor/events`);
    await postMessage(stack.url, 'survivor', 'first');
    await ollama.waitForHold('during-restart');
    before.close();

    await stopRedis();
    // While Redis is down a new message is refused in words, not swallowed.
    const refused = await fetch(`${stack.url}/api/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ conversation: 'survivor', user: 'tester', text: 'while down' }),
    });
    expect(refused.status).toBe(503);
    expect((await refused.json()) as { error: string }).toMatchObject({
      error: expect.stringMatching(/queue/i),
    });
    await startRedis();
    ollama.release('during-restart');

    // After the restart: the held turn is answered, and new messages flow again.
    await postMessage(stack.url, 'survivor', 'second', 'tester').catch(async () => {
      await new Promise((r) => setTimeout(r, 2000));
      return postMessage(stack.url, 'survivor', 'second', 'tester');
    });
    const after = await openSse(`${stack.url}/api/conversations/survivor/events`, { 'last-event-id': '0-0' });
    try {
      await after.waitFor((e) => e.type === 'reply' && e.text.includes('second'), 90_000);
      const replies = after.events
        .filter((e) => e.type === 'reply')
        .map((e) => (e.type === 'reply' ? e.text : ''));
      expect(replies).toEqual(['answer to first', 'answer to second']);
    } finally {
      after.close();
    }
  });
});
