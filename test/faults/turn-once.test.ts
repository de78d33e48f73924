import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeChatRequest, type FakeOllama, startFakeOllama } from '../../testkit/fakes/fake-ollama.js';
import { cleanInstance } from '../../testkit/instance.js';
import { testInstance } from '../../testkit/redis.js';
import { type OwnRedis, ownRedis } from '../helpers/own-redis.js';
import { openSse, postMessage } from '../helpers/sse.js';
import { startStack, testConfig } from '../helpers/stack.js';

/**
 * A Redis outage longer than the turn lease, while turns are finishing (issue #20: every conversation's
 * last turn used to run its tool a second time). Each turn's tool appends a line to a file in its
 * workspace; a later turn counts the lines: one run per turn, whatever Redis did meanwhile.
 */

const LEASE_SECONDS = 5;
const CONVERSATIONS = ['once-a', 'once-b', 'once-c'];
let redis: OwnRedis;
let ollama: FakeOllama;
let stack: Awaited<ReturnType<typeof startStack>>;
let config: ReturnType<typeof testConfig>;

/** The tool result's last line (its first says the exit code). */
const lastLine = (text: string) => text.trim().split('\n').at(-1) ?? '';

function script(request: FakeChatRequest) {
  const last = request.messages.at(-1);
  const text = last?.content ?? '';
  if (last?.role === 'tool') {
    const conversation = CONVERSATIONS.find((c) =>
      request.messages.some((m) => m.content.includes(`go ${c}`)),
    );
    // The first turn's answer waits here until the test has taken Redis away.
    return text.includes('runs=') && !text.includes('count=')
      ? { hold: `outage-${conversation}`, reply: `done: ${lastLine(text)}` }
      : { reply: `counted: ${lastLine(text)}` };
  }
  if (text.startsWith('go ')) {
    return {
      toolCalls: [
        {
          name: 'bash',
          arguments: { command: 'echo ran >> /workspace/runs; echo runs=$(wc -l < /workspace/runs)' },
        },
      ],
    };
  }
  return { toolCalls: [{ name: 'bash', arguments: { command: 'echo count=$(wc -l < /workspace/runs)' } }] };
}

beforeAll(async () => {
  redis = await ownRedis();
  ollama = await startFakeOllama({ models: ['qwen2.5:7b'], script });
  config = testConfig(testInstance('turn-once'), {
    SANDBOT_REDIS_URL: redis.url,
    OLLAMA_HOST: ollama.url,
    SANDBOT_TURN_LEASE_SECONDS: String(LEASE_SECONDS),
  });
  stack = await startStack(config);
});

afterAll(async () => {
  await stack?.stop();
  await cleanInstance(config).catch(() => undefined);
  await redis?.remove();
  await ollama?.close();
});

/** The gateway answers 503 until its Redis connection is back (it retries every 2 s at most). */
async function openSseOnceUp(url: string) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await openSse(url, { 'last-event-id': '0-0' });
    } catch (error) {
      if (attempt >= 30 || !String(error).includes('503')) throw error;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

describe('a turn runs once', () => {
  it('through a Redis outage longer than the lease while the turns finish', async () => {
    for (const c of CONVERSATIONS) await postMessage(stack.url, c, `go ${c}`);
    for (const c of CONVERSATIONS) await ollama.waitForHold(`outage-${c}`);

    await redis.stop();
    // The turns finish while Redis is away; it stays away past the lease.
    for (const c of CONVERSATIONS) ollama.release(`outage-${c}`);
    await new Promise((r) => setTimeout(r, (LEASE_SECONDS + 1.5) * 1000));
    await redis.start();

    for (const c of CONVERSATIONS) {
      const sse = await openSseOnceUp(`${stack.url}/api/conversations/${c}/events`);
      try {
        await sse.waitFor((e) => e.type === 'reply' && e.text.includes('done: runs=1'), 60_000);
        await postMessage(stack.url, c, 'how many runs?').catch(async () => {
          await new Promise((r) => setTimeout(r, 2000));
          return postMessage(stack.url, c, 'how many runs?');
        });
        // A rerun of the first turn would run before this one, and leave two lines.
        const counted = await sse.waitFor((e) => e.type === 'reply' && e.text.includes('counted:'), 60_000);
        expect(counted.type === 'reply' && counted.text).toBe('counted: count=1');
        const replies = sse.events.filter((e) => e.type === 'reply');
        expect(replies.map((e) => (e.type === 'reply' ? e.text : ''))).toEqual([
          'done: runs=1',
          'counted: count=1',
        ]);
      } finally {
        sse.close();
      }
    }
    // The model was asked to start each first turn once.
    const starts = ollama.chatRequests().filter((r) => r.messages.at(-1)?.content.startsWith('go '));
    expect(starts.length).toBe(CONVERSATIONS.length);
  }, 300_000);
});
