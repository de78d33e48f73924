import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createChatAdapters } from '../../adapters/index.js';
import { webConversationId } from '../../src/contracts/conversation/id.js';
import { createLogger } from '../../src/contracts/log/logger.js';
import { conversationKeys, instanceKeys } from '../../src/contracts/redis/keys.js';
import { startGateway } from '../../src/gateway/start-gateway.js';
import { type FakeOllama, startFakeOllama } from '../../testkit/fakes/fake-ollama.js';
import { cleanInstance } from '../../testkit/instance.js';
import { REDIS_URL, testInstance } from '../../testkit/redis.js';
import { api, auditOf, sleep } from '../helpers/schedules.js';
import { openSse } from '../helpers/sse.js';
import { testConfig } from '../helpers/stack.js';
import { WorkerProcesses } from '../helpers/worker-process.js';

/**
 * A 10-second schedule (the minimum lowered for the test) over a minute, with two worker processes, one
 * SIGKILLed in the middle of a run: every occurrence runs, none twice.
 */

const config = testConfig(testInstance('sched-kill'), {
  SANDBOT_TURN_LEASE_SECONDS: '2',
  SANDBOT_SCHEDULE_MIN_SECONDS: '10',
  SANDBOT_LOG_LEVEL: 'warn',
});
const workers = new WorkerProcesses(config, true);
const redis = new Redis(REDIS_URL);
let ollama: FakeOllama;
let gateway: Awaited<ReturnType<typeof startGateway>>;

beforeAll(async () => {
  // Each run's model call takes a while, so a kill lands in the middle of one.
  ollama = await startFakeOllama({
    models: [config.SANDBOT_MODEL],
    script: () => ({ delayMs: 1500, reply: 'done' }),
  });
  Object.assign(config, { OLLAMA_HOST: ollama.url });
  gateway = await startGateway(config, createLogger(config), createChatAdapters);
});

afterAll(async () => {
  workers.killAll();
  await gateway?.stop();
  await ollama?.close();
  redis.disconnect();
  await cleanInstance(config);
});

describe('a schedule with two workers, one killed mid-way', () => {
  it('runs each occurrence exactly once over a minute', { timeout: 300_000 }, async () => {
    // Each worker's id (from its report), so the one running the schedule's turn can be the one killed.
    const layers = instanceKeys(config.SANDBOT_INSTANCE).layers;
    const byId = new Map<string, ReturnType<typeof workers.spawn>>();
    for (const n of [1, 2]) {
      const child = workers.spawn();
      await expect.poll(() => redis.hlen(layers), { timeout: 60_000 }).toBe(n);
      const id = (await redis.hkeys(layers)).find((k) => !byId.has(k));
      if (id) byId.set(id, child);
    }
    const sse = await openSse(`${gateway.url}/api/conversations/ticks/events`);
    try {
      const created = await api(gateway.url, 'POST', '/api/schedules', {
        conversation: 'ticks',
        user: 'ann',
        text: 'tick',
        every: '10s',
      });
      expect(created.status).toBe(201);
      const id = String(created.body.id);
      const first = Date.parse(String(created.body.next));
      const expected = [0, 1, 2, 3, 4, 5].map((k) => first + k * 10_000);

      // Mid-way: the third run's model call is under way; the worker running it dies.
      await expect
        .poll(() => ollama.chatRequests().length, { timeout: 60_000, interval: 100 })
        .toBeGreaterThanOrEqual(3);
      const lease = conversationKeys(config.SANDBOT_INSTANCE, webConversationId('ticks')).lease;
      const holder = (await redis.get(lease))?.split(':')[0] ?? '';
      const doomed = byId.get(holder);
      expect(doomed, `the lease holder ${holder} is one of ${[...byId.keys()]}`).toBeDefined();
      doomed?.kill('SIGKILL');
      // After the sixth occurrence is due (and taken), no more: pause.
      await sleep(Math.max(0, expected[5]! + 5000 - Date.now()));
      expect((await api(gateway.url, 'POST', `/api/schedules/${id}/pause`)).status).toBe(200);

      const conversation = webConversationId('ticks');
      const runs = () => auditOf(config, conversation, 'schedule.run');
      await expect
        .poll(async () => (await runs()).length, { timeout: 120_000, interval: 500 })
        .toBeGreaterThanOrEqual(6);
      await sleep(12_000);
      const occurrences = (await runs()).map((e) => Date.parse(String(e.data.occurrence)));
      expect(occurrences.sort()).toEqual(expected);
      // Accepted into the conversation once each: its sequence counts every message it took.
      expect(Number(await redis.get(conversationKeys(config.SANDBOT_INSTANCE, conversation).seq))).toBe(6);
      const replies = sse.events.filter((e) => e.type === 'reply').map((e) => e.id);
      expect(new Set(replies).size).toBe(replies.length);
      expect(sse.events.filter((e) => e.type === 'error')).toEqual([]);
    } finally {
      sse.close();
    }
  });
});
