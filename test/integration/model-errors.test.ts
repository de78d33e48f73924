import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeOllama, startFakeOllama } from '../fakes/fake-ollama.js';
import { testInstance } from '../helpers/redis.js';
import { openSse, postMessage } from '../helpers/sse.js';
import { cleanInstance, startStack, testConfig } from '../helpers/stack.js';

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
});
