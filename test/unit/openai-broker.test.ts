import { createServer } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ChatMessage } from '../../src/contracts/protocol/agent.js';
import { ModelBroker, ModelBrokerError, modelBrokerFor } from '../../src/worker/broker/model-broker.js';
import { startFakeOllama } from '../../testkit/fakes/fake-ollama.js';
import { type FakeOpenAI, startFakeOpenAI } from '../../testkit/fakes/fake-openai.js';

/** The broker with SANDBOT_MODEL_PROVIDER=openai, against the fake OpenAI-compatible server. */

const MODEL = 'qwen2.5-7b-instruct';
const KEY = 'sk-test-0123456789abcdef';
const hello: ChatMessage[] = [{ role: 'user', content: 'hello' }];

let fake: FakeOpenAI;
let broker: ModelBroker;

beforeAll(async () => {
  fake = await startFakeOpenAI({ models: [MODEL, 'llama-3.2-1b'], apiKey: KEY });
  broker = modelBrokerFor(
    {
      SANDBOT_MODEL_PROVIDER: 'openai',
      OLLAMA_HOST: 'http://127.0.0.1:1',
      SANDBOT_MODEL_URL: fake.url,
      SANDBOT_MODEL_API_KEY: KEY,
    },
    10_000,
  );
});
afterAll(() => fake.close());
beforeEach(() => {
  fake.requests.length = 0;
  fake.setApiKey(KEY);
});

async function brokerError(promise: Promise<unknown>): Promise<ModelBrokerError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ModelBrokerError);
  return error as ModelBrokerError;
}

describe('ModelBroker with an OpenAI-compatible server', () => {
  it('streams a reply and a tool call sent in pieces; usage and thinking counted; the key on every request', async () => {
    fake.setScript([
      {
        thinking: 'the user wants a listing',
        toolCalls: [{ name: 'bash', arguments: { command: 'ls -la /workspace' } }],
        usage: { prompt_tokens: 321, completion_tokens: 45 },
      },
    ]);
    const deltas: string[] = [];
    const answer = await broker.chat({ model: MODEL, messages: hello, onDelta: (t) => deltas.push(t) });
    expect(answer.message).toEqual({
      role: 'assistant',
      content: '',
      tool_calls: [{ function: { name: 'bash', arguments: { command: 'ls -la /workspace' } } }],
    });
    expect(answer).toMatchObject({ promptTokens: 321, completionTokens: 45, modelCalls: 1 });
    expect(answer.thinkingChars).toBe('the user wants a listing'.length);

    fake.setScript([{ reply: 'Here it is.' }]);
    const next = await broker.chat({
      model: MODEL,
      messages: [...hello, answer.message, { role: 'tool', tool_name: 'bash', content: 'total 0' }],
      onDelta: (t) => deltas.push(t),
    });
    expect(next.message).toEqual({ role: 'assistant', content: 'Here it is.' });
    expect(deltas.join('')).toBe('Here it is.');
    const [first, second] = fake.chatRequests();
    expect(first?.stream).toBe(true);
    expect(first?.stream_options).toEqual({ include_usage: true });
    expect(first?.tools?.length).toBeGreaterThan(0);
    // The history goes back in OpenAI's shape, the call's id answered by the tool result.
    expect(second?.messages.slice(1)).toEqual([
      { role: 'user', content: 'hello' },
      {
        role: 'assistant',
        content: null,
        tool_calls: [
          {
            id: 'call_2_0',
            type: 'function',
            function: { name: 'bash', arguments: '{"command":"ls -la /workspace"}' },
          },
        ],
      },
      { role: 'tool', tool_call_id: 'call_2_0', content: 'total 0' },
    ]);
    expect(JSON.stringify(second)).not.toContain('the user wants a listing');
    expect(fake.requests.map((r) => r.authorization)).toEqual([`Bearer ${KEY}`, `Bearer ${KEY}`]);
  });

  it('answers an unreadable written call with the format, in a history the server accepts', async () => {
    fake.setScript([
      { reply: '<tool_call>{"name": "bash", "arguments": {"command": </tool_call>' },
      { toolCalls: [{ name: 'bash', arguments: { command: 'ls' } }] },
    ]);
    const answer = await broker.chat({ model: MODEL, messages: hello });
    expect(answer.modelCalls).toBe(2);
    expect(answer.message.tool_calls).toEqual([{ function: { name: 'bash', arguments: { command: 'ls' } } }]);
    // The note on the unreadable call answers no call: it goes as a user message (a tool one is refused).
    const retry = fake.chatRequests()[1]?.messages.at(-1);
    expect(retry?.role).toBe('user');
    expect(retry?.content).toMatch(/^\[tool_call result\]\nError: your tool call could not be read/);
  });

  it('the fake refuses a tool message that answers no call, as OpenAI and vLLM do', async () => {
    const response = await fetch(`${fake.url}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        model: MODEL,
        messages: [
          { role: 'user', content: 'hi' },
          { role: 'tool', tool_call_id: 'call_x', content: 'out' },
        ],
      }),
    });
    expect(response.status).toBe(400);
  });

  it('checks the server and the model with GET /models, listing the served ones when missing', async () => {
    expect(await broker.checkServer()).toEqual({ ok: true, version: 'OpenAI-compatible server, 2 models' });
    expect(await broker.checkModel(MODEL)).toEqual({ ok: true });
    const missing = await broker.checkModel('gpt-oss-20b');
    expect(missing).toMatchObject({ ok: false, pulled: [MODEL, 'llama-3.2-1b'] });
    expect(!missing.ok && missing.error.kind).toBe('model_missing');
    expect(fake.requests.every((r) => r.path === '/v1/models' && r.authorization === `Bearer ${KEY}`)).toBe(
      true,
    );
  });

  it('sends no Authorization header when no key is set', async () => {
    fake.setApiKey(undefined);
    fake.setScript([{ reply: 'hi' }]);
    const open = new ModelBroker({ provider: 'openai', host: fake.url, timeoutMs: 5000 });
    await open.chat({ model: MODEL, messages: hello });
    expect(fake.requests.map((r) => r.authorization)).toEqual([undefined]);
  });

  it('turns every failure into words', async () => {
    const wrongKey = new ModelBroker({
      provider: 'openai',
      host: fake.url,
      apiKey: 'sk-wrong',
      timeoutMs: 5000,
    });
    const denied = await brokerError(wrongKey.chat({ model: MODEL, messages: hello }));
    expect(denied.kind).toBe('unauthorized');
    expect(denied.message).toContain('Incorrect API key provided.');
    expect(denied.message).not.toContain('sk-wrong');

    const missing = await brokerError(broker.chat({ model: 'nope', messages: hello }));
    expect(missing.kind).toBe('model_missing');
    expect(missing.message).toMatch(/^model nope is not served by http:\/\/127\.0\.0\.1:\d+\/v1/);

    fake.setScript([
      { status: 429, error: 'Rate limit reached', retryAfter: 7 },
      { status: 500, error: 'engine crashed' },
      { reply: 'a long answer cut off', cut: true },
      { reply: 'some text then garbage', garbage: true },
      { reply: 'partial', error: 'CUDA out of memory' },
      { delayMs: 2000, reply: 'late' },
    ]);
    const limited = await brokerError(broker.chat({ model: MODEL, messages: hello }));
    expect(limited.kind).toBe('rate_limited');
    expect(limited.message).toMatch(
      /rate limiting requests \(HTTP 429: Rate limit reached\); retry after 7 s$/,
    );
    const failed = await brokerError(broker.chat({ model: MODEL, messages: hello }));
    expect(failed).toMatchObject({ kind: 'server_error' });
    expect(failed.message).toMatch(/failed \(HTTP 500\): engine crashed$/);
    const cut = await brokerError(broker.chat({ model: MODEL, messages: hello }));
    expect(cut.kind).toBe('bad_response');
    expect(cut.message).toMatch(/ended its answer before it was complete/);
    const garbage = await brokerError(broker.chat({ model: MODEL, messages: hello }));
    expect(garbage.kind).toBe('bad_response');
    expect(garbage.message).toMatch(/could not be read \(a server-sent event that is not JSON\)/);
    const mid = await brokerError(broker.chat({ model: MODEL, messages: hello }));
    expect(mid.message).toMatch(/failed: CUDA out of memory$/);
    const quick = new ModelBroker({ provider: 'openai', host: fake.url, apiKey: KEY, timeoutMs: 500 });
    const late = await brokerError(quick.chat({ model: MODEL, messages: hello }));
    expect(late.kind).toBe('timeout');
    expect(late.message).toMatch(/did not answer within 0\.5 s$/);
  });

  it('says a server that is not there cannot be reached', async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    await new Promise((resolve) => server.close(resolve));
    const gone = new ModelBroker({
      provider: 'openai',
      host: `http://127.0.0.1:${port}/v1`,
      timeoutMs: 5000,
    });
    const error = await brokerError(gone.chat({ model: MODEL, messages: hello }));
    expect(error.kind).toBe('unreachable');
    expect(error.message).toBe(
      `cannot reach the model server at http://127.0.0.1:${port}/v1: connection refused`,
    );
    const checked = await gone.checkServer();
    expect(!checked.ok && checked.error.kind).toBe('unreachable');
  });
});

describe('contextTokens', () => {
  it('goes to Ollama as options.num_ctx, only when given; the openai provider leaves it out', async () => {
    const ollama = await startFakeOllama({ models: ['qwen2.5:7b'], script: () => ({ reply: 'ok' }) });
    try {
      const viaOllama = new ModelBroker({ host: ollama.url, timeoutMs: 5000 });
      await viaOllama.chat({ model: 'qwen2.5:7b', messages: hello, contextTokens: 8192 });
      await viaOllama.chat({ model: 'qwen2.5:7b', messages: hello });
      const [sized, plain] = ollama.chatRequests();
      expect(sized?.options).toEqual({ num_ctx: 8192 });
      expect(plain?.options).toBeUndefined();
    } finally {
      await ollama.close();
    }
    fake.setScript([{ reply: 'ok' }]);
    await broker.chat({ model: MODEL, messages: hello, contextTokens: 8192 });
    expect(JSON.stringify(fake.chatRequests().at(-1))).not.toContain('8192');
  });
});
