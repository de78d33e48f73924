import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeOllama, startFakeOllama } from '../../testkit/fakes/fake-ollama.js';
import { cleanInstance } from '../../testkit/instance.js';
import { testInstance } from '../../testkit/redis.js';
import { openSse, postMessage } from '../helpers/sse.js';
import { startStack, testConfig } from '../helpers/stack.js';

/** Model trouble becomes a clear error in chat, and the conversation works again afterwards. */

let ollama: FakeOllama;
beforeAll(async () => {
  ollama = await startFakeOllama({ models: ['qwen2.5:7b'], script: () => ({ reply: 'all good' }) });
});
afterAll(async () => {
  await ollama?.close();
});

describe('model errors in chat', () => {
  it('names a model that is not pulled and how to pull it; works once it is there', async () => {
    const config = testConfig(testInstance('model'), {
      OLLAMA_HOST: ollama.url,
      SANDBOT_MODEL: 'llama3.2:1b',
    });
    const stack = await startStack(config);
    const sse = await openSse(`${stack.url}/api/conversations/missing/events`);
    try {
      await postMessage(stack.url, 'missing', 'hello');
      const error = await sse.waitFor((e) => e.type === 'error');
      expect(error.type === 'error' && error.message).toMatch(
        /llama3\.2:1b is not pulled: run `ollama pull llama3\.2:1b`/,
      );
      ollama.setModels(['qwen2.5:7b', 'llama3.2:1b']);
      await postMessage(stack.url, 'missing', 'hello again');
      const reply = await sse.waitFor((e) => e.type === 'reply');
      expect(reply.type === 'reply' && reply.text).toBe('all good');
    } finally {
      sse.close();
      await stack.stop();
      await cleanInstance(config);
    }
  });

  it('says Ollama cannot be reached, at which address', async () => {
    const config = testConfig(testInstance('noollama'), { OLLAMA_HOST: 'http://127.0.0.1:9' });
    const stack = await startStack(config);
    const sse = await openSse(`${stack.url}/api/conversations/unreachable/events`);
    try {
      await postMessage(stack.url, 'unreachable', 'hello');
      const error = await sse.waitFor((e) => e.type === 'error');
      expect(error.type === 'error' && error.message).toMatch(
        /cannot reach Ollama at http:\/\/127\.0\.0\.1:9/,
      );
    } finally {
      sse.close();
      await stack.stop();
      await cleanInstance(config);
    }
  });

  it('says so when Ollama is too slow or answers garbage, and recovers when it is back', async () => {
    const config = testConfig(testInstance('flaky'), {
      OLLAMA_HOST: ollama.url,
      SANDBOT_MODEL_TIMEOUT_SECONDS: '1',
    });
    const stack = await startStack(config);
    const sse = await openSse(`${stack.url}/api/conversations/flaky/events`);
    try {
      ollama.setScript([
        { delayMs: 3000, reply: 'too late' },
        { garbage: true },
        { reply: 'back to normal' },
      ]);
      await postMessage(stack.url, 'flaky', 'one');
      const slow = await sse.waitFor((e) => e.type === 'error');
      expect(slow.type === 'error' && slow.message).toMatch(/Ollama did not answer within 1 s/);
      await postMessage(stack.url, 'flaky', 'two');
      const garbage = await sse.waitFor((e) => e.type === 'error' && e.id !== slow.id);
      expect(garbage.type === 'error' && garbage.message).toMatch(
        /Ollama at http:\/\/127\.0\.0\.1:\d+ sent a line that is not a JSON object/,
      );
      await postMessage(stack.url, 'flaky', 'three');
      const reply = await sse.waitFor((e) => e.type === 'reply');
      expect(reply.type === 'reply' && reply.text).toBe('back to normal');
    } finally {
      sse.close();
      ollama.setScript(() => ({ reply: 'all good' }));
      await stack.stop();
      await cleanInstance(config);
    }
  });
});
