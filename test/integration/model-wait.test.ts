import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { webConversationId } from '../../src/contracts/conversation/id.js';
import {
  type ConversationControl,
  createConversationControl,
} from '../../src/shared/queue/conversation-control.js';
import { ConversationStore } from '../../src/shared/queue/conversation-store.js';
import { ModelGate } from '../../src/worker/broker/model-gate.js';
import { REDIS_URL, testInstance } from '../../testkit/redis.js';
import { openSse, postMessage, type SseClient } from '../helpers/sse.js';
import { type ScriptedStack, startScriptedStack, testConfig } from '../helpers/stack.js';

/**
 * Waiting for the model server (SANDBOT_MODEL_CONCURRENCY=1 here), end to end in one stack: a turn
 * stopped while in line leaves the line at once, and the wait is not the model's time (a request
 * that waited longer than SANDBOT_MODEL_TIMEOUT_SECONDS still gets its full time).
 */

const config = testConfig(testInstance('model-wait'), {
  SANDBOT_MODEL_CONCURRENCY: '1',
  SANDBOT_MODEL_TIMEOUT_SECONDS: '3',
});
let stack: ScriptedStack;
let redis: Redis;
let control: ConversationControl;

beforeAll(async () => {
  stack = await startScriptedStack(config, (request) => {
    const text = request.messages.map((m) => m.content).join(' ');
    const job = /job-[\w-]+/.exec(text)?.[0] ?? 'unknown';
    if (job.startsWith('job-hold')) return { hold: job, reply: `answer for ${job}` };
    return { reply: `answer for ${job}` };
  });
  redis = new Redis(REDIS_URL);
  control = createConversationControl(redis, new ConversationStore(redis, config.SANDBOT_INSTANCE), config);
});

afterAll(async () => {
  redis?.disconnect();
  await stack?.stop();
});

async function post(job: string): Promise<SseClient> {
  const sse = await openSse(`${stack.url}/api/conversations/${job}/events`);
  await postMessage(stack.url, job, `please do ${job}`);
  return sse;
}

const waiting = (sse: SseClient) =>
  sse.waitFor((e) => e.type === 'progress' && e.text.startsWith('waiting for the model'));
const end = (sse: SseClient) => sse.waitFor((e) => e.type === 'reply' || e.type === 'error');
const text = (event: Awaited<ReturnType<typeof end>>) =>
  event.type === 'reply' ? event.text : event.type === 'error' ? `error: ${event.message}` : '';

describe('waiting for the model server', () => {
  it('is cancelled by a stop: the stopped turn leaves the line, the next one moves up', async () => {
    const streams: SseClient[] = [];
    try {
      const holder = await post('job-hold-1');
      streams.push(holder);
      await stack.ollama.waitForHold('job-hold-1');
      const stopped = await post('job-stopped');
      streams.push(stopped);
      expect(await waiting(stopped)).toMatchObject({ text: 'waiting for the model (next in line)…' });
      expect(await control.stop(webConversationId('job-stopped'), 'alice')).toBe(true);
      expect(text(await end(stopped))).toBe('Stopped (asked by alice).');
      // Still held: a newcomer is next in line, not behind the stopped turn.
      const next = await post('job-next');
      streams.push(next);
      expect(await waiting(next)).toMatchObject({ text: 'waiting for the model (next in line)…' });
      stack.ollama.release('job-hold-1');
      expect(text(await end(holder))).toBe('answer for job-hold-1');
      expect(text(await end(next))).toBe('answer for job-next');
      const asked = stack.ollama.chatRequests().map((r) => r.messages.map((m) => m.content).join(' '));
      expect(asked.some((t) => t.includes('job-stopped'))).toBe(false);
    } finally {
      for (const sse of streams) sse.close();
    }
  });

  it('does not count toward the model request timeout', async () => {
    // The test holds the server's one slot itself, as another worker would.
    const gate = new ModelGate({
      redis,
      instance: config.SANDBOT_INSTANCE,
      serverUrl: stack.ollama.url,
      max: 1,
      leaseMs: config.SANDBOT_TURN_LEASE_SECONDS * 1000,
    });
    const slot = await gate.acquire();
    const sse = await post('job-patient');
    try {
      expect(await waiting(sse)).toMatchObject({ text: 'waiting for the model (next in line)…' });
      // Longer in line than the model's whole time limit (3 s): counted, it would have timed out.
      await new Promise((resolve) => setTimeout(resolve, 4000));
      await slot.release();
      expect(text(await end(sse))).toBe('answer for job-patient');
    } finally {
      sse.close();
    }
  });
});
