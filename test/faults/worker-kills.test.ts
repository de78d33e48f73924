import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createChatAdapters } from '../../adapters/index.js';
import { createLogger } from '../../src/contracts/log/logger.js';
import { startGateway } from '../../src/gateway/start-gateway.js';
import { type FakeChatRequest, type FakeOllama, startFakeOllama } from '../../testkit/fakes/fake-ollama.js';
import { cleanInstance } from '../../testkit/instance.js';
import { testInstance } from '../../testkit/redis.js';
import { openSse, postMessage, type SseClient } from '../helpers/sse.js';
import { testConfig } from '../helpers/stack.js';
import { WorkerProcesses } from '../helpers/worker-process.js';

/**
 * A worker SIGKILLed mid-turn, 20 times in a row, while messages keep coming: every message is answered,
 * none twice. The model answers with the messages its turn carried, so the replies say which messages
 * each turn handled.
 */

const KILLS = Number(process.env.FAULT_KILLS ?? 20);
const CONVERSATIONS = ['k1', 'k2', 'k3', 'k4'];
const config = testConfig(testInstance('kills'), {
  SANDBOT_TURN_LEASE_SECONDS: '2',
  // Load from one test user, not a person: the per-person limits would refuse most of it.
  SANDBOT_USER_MESSAGES_PER_MINUTE: '0',
  SANDBOT_USER_CONVERSATIONS_PER_HOUR: '0',
});
let ollama: FakeOllama;
let gateway: Awaited<ReturnType<typeof startGateway>>;
const workers = new WorkerProcesses(config);

/** The user messages of the turn being answered: those after the last assistant message. */
function turnMessages(request: FakeChatRequest): string[] {
  const lastAnswer = request.messages.map((m) => m.role).lastIndexOf('assistant');
  return request.messages
    .slice(lastAnswer + 1)
    .filter((m) => m.role === 'user')
    .map((m) => m.content.replace(/^[^:]*: /, ''));
}

beforeAll(async () => {
  ollama = await startFakeOllama({
    models: ['qwen2.5:7b'],
    script: (request) => ({ delayMs: 400, reply: `answer to [${turnMessages(request).join('|')}]` }),
  });
  Object.assign(config, { OLLAMA_HOST: ollama.url });
  gateway = await startGateway(config, createLogger(config), createChatAdapters);
});

afterAll(async () => {
  workers.killAll();
  await gateway?.stop();
  await ollama?.close();
  await cleanInstance(config);
});

describe('workers killed again and again under load', () => {
  it(`loses no message and answers none twice over ${KILLS} SIGKILLs`, { timeout: 300_000 }, async () => {
    const streams = new Map<string, SseClient>();
    for (const c of CONVERSATIONS)
      streams.set(c, await openSse(`${gateway.url}/api/conversations/${c}/events`));
    const sent: string[] = [];
    let n = 0;
    const send = async () => {
      const conversation = CONVERSATIONS[n % CONVERSATIONS.length] ?? 'k1';
      const text = `m${n++}-${conversation}`;
      sent.push(text);
      await postMessage(gateway.url, conversation, text);
    };
    try {
      for (let kill = 0; kill < KILLS; kill++) {
        await send();
        await send();
        const before = ollama.chatRequests().length;
        const worker = workers.spawn();
        // Kill it once it is in the middle of a turn (a model request is on its way).
        for (let i = 0; i < 200 && ollama.chatRequests().length === before; i++)
          await new Promise((r) => setTimeout(r, 25));
        worker.kill('SIGKILL');
        await new Promise((resolve) => worker.once('exit', resolve));
      }
      workers.spawn();
      const answered = async () =>
        [...streams.values()]
          .flatMap((s) => s.events)
          .filter((e) => e.type === 'reply')
          .flatMap((e) => (e.type === 'reply' ? (/\[(.*)\]/.exec(e.text)?.[1] ?? '').split('|') : []));
      await expect
        .poll(async () => (await answered()).length, { timeout: 180_000, interval: 500 })
        .toBeGreaterThanOrEqual(sent.length);
      const all = await answered();
      expect([...all].sort()).toEqual([...sent].sort());
      const ids = [...streams.values()]
        .flatMap((s) => s.events)
        .filter((e) => e.type === 'reply')
        .map((e) => e.id);
      expect(new Set(ids).size).toBe(ids.length);
      expect([...streams.values()].flatMap((s) => s.events).filter((e) => e.type === 'error')).toEqual([]);
    } finally {
      for (const s of streams.values()) s.close();
    }
  });
});
