import type { ChildProcess } from 'node:child_process';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createChatAdapters } from '../../adapters/index.js';
import { createLogger } from '../../src/contracts/log/logger.js';
import { startGateway } from '../../src/gateway/start-gateway.js';
import { ModelGate } from '../../src/worker/broker/model-gate.js';
import { type FakeChatRequest, type FakeOllama, startFakeOllama } from '../../testkit/fakes/fake-ollama.js';
import { cleanInstance } from '../../testkit/instance.js';
import { REDIS_URL, testInstance } from '../../testkit/redis.js';
import { serviceSettings } from '../helpers/cli-service.js';
import { spawnSourceWorker } from '../helpers/host-workers.js';
import { openSse, postMessage, type SseClient } from '../helpers/sse.js';
import { testConfig } from '../helpers/stack.js';

/**
 * SANDBOT_MODEL_CONCURRENCY across worker processes sharing one model server (the fake Ollama, which
 * holds every answer until the test lets it go, so what is in flight is known): never more at once
 * than the cap, the rest served in order of arrival whichever worker runs them, the user told
 * "waiting for the model" meanwhile; and a worker killed holding a slot frees it after its lease.
 */

const MODEL = 'qwen2.5:7b';
const CAP = 2;
const config = testConfig(testInstance('gate-procs'));
let ollama: FakeOllama;
let gateway: Awaited<ReturnType<typeof startGateway>>;
const children = new Set<ChildProcess>();
const redis = new Redis(REDIS_URL);

/** Jobs in the order their model request reached the server; and which the test let answer. */
const arrived: string[] = [];
const released = new Set<string>();
let mostInFlight = 0;
/** Jobs whose first request is answered at once (not held): a rerun after a takeover. */
const seen = new Set<string>();

const jobOf = (request: FakeChatRequest) =>
  /job-\w+/.exec(request.messages.map((m) => m.content).join(' '))?.[0] ?? 'unknown';

beforeAll(async () => {
  ollama = await startFakeOllama({
    models: [MODEL],
    script: (request) => {
      const job = jobOf(request);
      if (seen.has(job)) return { reply: `answer for ${job} (again)` };
      seen.add(job);
      arrived.push(job);
      mostInFlight = Math.max(mostInFlight, arrived.filter((j) => !released.has(j)).length);
      return { hold: job, reply: `answer for ${job}` };
    },
  });
  Object.assign(config, { OLLAMA_HOST: ollama.url });
  gateway = await startGateway(config, createLogger(config), createChatAdapters);
});

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await gateway?.stop();
  await ollama?.close();
  redis.disconnect();
  await cleanInstance(config);
});

/** A `sandbot worker` process from the source (as `node dist/src/cli/main.js worker`, without a build). */
function spawnWorker(concurrency: number): ChildProcess {
  const env = {
    ...process.env,
    ...serviceSettings(config.SANDBOT_INSTANCE, ollama.url),
    SANDBOT_MODEL: MODEL,
    SANDBOT_MODEL_CONCURRENCY: String(CAP),
    SANDBOT_WORKER_CONCURRENCY: String(concurrency),
    SANDBOT_TURN_LEASE_SECONDS: String(config.SANDBOT_TURN_LEASE_SECONDS),
  };
  const child = spawnSourceWorker(env, 'worker', (gone) => children.delete(gone));
  children.add(child);
  return child;
}

async function post(job: string): Promise<SseClient> {
  const sse = await openSse(`${gateway.url}/api/conversations/${job}/events`);
  await postMessage(gateway.url, job, `please do ${job}`);
  return sse;
}

const waiting = (sse: SseClient) =>
  sse.waitFor((e) => e.type === 'progress' && /^waiting for the model/.test(e.text), 90_000);
const reply = (sse: SseClient) => sse.waitFor((e) => e.type === 'reply' || e.type === 'error', 90_000);

function release(job: string): void {
  released.add(job);
  ollama.release(job);
}

describe('one model server shared by two worker processes', () => {
  it('never has more than the cap in flight, serves the rest in order of arrival, and says they wait', async () => {
    const streams = new Map<string, SseClient>();
    try {
      // The first worker takes three turns: two get the slots, the third waits.
      spawnWorker(3);
      for (const job of ['job-1', 'job-2']) {
        streams.set(job, await post(job));
        await ollama.waitForHold(job);
      }
      const third = await post('job-3');
      streams.set('job-3', third);
      expect((await waiting(third)).type).toBe('progress');
      // The second worker's turns (the first is full) wait behind the first's, in the same line.
      spawnWorker(2);
      for (const job of ['job-4', 'job-5']) {
        const sse = await post(job);
        streams.set(job, sse);
        await waiting(sse);
      }
      expect(arrived).toEqual(['job-1', 'job-2']);
      // Each answer frees a slot for the next in line, whichever worker it is on.
      for (const [done, next] of [
        ['job-1', 'job-3'],
        ['job-2', 'job-4'],
        ['job-3', 'job-5'],
      ] as const) {
        release(done);
        await ollama.waitForHold(next);
      }
      release('job-4');
      release('job-5');
      for (const [job, sse] of streams) {
        const end = await reply(sse);
        expect(end.type === 'reply' && end.text, job).toBe(`answer for ${job}`);
      }
      expect(arrived).toEqual(['job-1', 'job-2', 'job-3', 'job-4', 'job-5']);
      expect(mostInFlight).toBe(CAP);
    } finally {
      for (const sse of streams.values()) sse.close();
      for (const child of children) child.kill('SIGKILL');
    }
  });

  it('frees the slots of a worker killed while holding them, after their lease', async () => {
    const worker = spawnWorker(CAP);
    const streams = [await post('job-k1'), await post('job-k2')];
    try {
      await ollama.waitForHold('job-k1');
      await ollama.waitForHold('job-k2');
      worker.kill('SIGKILL');
      await new Promise((resolve) => worker.once('exit', resolve));
      // The dead worker's requests still hold both slots: a newcomer waits, then gets one after the lease.
      const gate = new ModelGate({
        redis,
        instance: config.SANDBOT_INSTANCE,
        serverUrl: ollama.url,
        max: CAP,
        leaseMs: config.SANDBOT_TURN_LEASE_SECONDS * 1000,
      });
      let ahead: number | undefined;
      const slot = await gate.acquire({ onWait: (n) => (ahead = n) });
      expect(ahead).toBe(0);
      await slot.release();
      // Another worker takes the dead one's turns over; they get slots and finish.
      spawnWorker(CAP);
      for (const sse of streams) {
        const end = await reply(sse);
        expect(end.type === 'reply' && end.text).toMatch(/^answer for job-k\d \(again\)$/);
      }
    } finally {
      for (const sse of streams) sse.close();
    }
  });
});
