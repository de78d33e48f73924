import fc from 'fast-check';
import { APIConnectionError, APIError } from 'openai';
import { describe, expect, it } from 'vitest';
import { classifyOllamaError, ModelBrokerError } from '../../src/worker/broker/errors.js';
import { classifyOpenAIError } from '../../src/worker/broker/providers/openai-errors.js';
import {
  addOpenAIChunk,
  emptyOpenAIReply,
  type OpenAIReplyState,
  toOpenAIMessages,
  toReplyState,
} from '../../src/worker/broker/providers/openai-stream.js';
import { shapeReply } from '../../src/worker/broker/reply.js';
import { answerChunks, type FakeOpenAIStep } from '../../testkit/fakes/fake-openai.js';

const OFFERED = ['bash', 'read_file'];
const request = { model: 'm', messages: [], stream_options: { include_usage: true } };

function fold(chunks: unknown[]): OpenAIReplyState {
  let state = emptyOpenAIReply();
  for (const chunk of chunks) state = addOpenAIChunk(state, chunk).state;
  return state;
}
const shaped = (chunks: unknown[]) => shapeReply(toReplyState(fold(chunks)), OFFERED);
const delta = (d: Record<string, unknown>, finish: string | null = null) => ({
  choices: [{ index: 0, delta: d, finish_reason: finish }],
});
const step = (s: FakeOpenAIStep) => answerChunks(request, s);

describe('an OpenAI-compatible stream, folded', () => {
  it('puts a tool call together from its pieces, by index, and counts the usage', () => {
    const chunks = step({
      toolCalls: [
        { name: 'bash', arguments: { command: 'echo one' } },
        { name: 'read_file', arguments: { path: 'notes.txt' } },
      ],
      usage: { prompt_tokens: 120, completion_tokens: 30 },
    });
    // The fake really splits the arguments: later pieces carry no name.
    expect(chunks.filter((c) => JSON.stringify(c).includes('"arguments"')).length).toBeGreaterThan(2);
    const state = toReplyState(fold(chunks));
    expect(state).toMatchObject({
      done: true,
      doneReason: 'tool_calls',
      promptTokens: 120,
      completionTokens: 30,
    });
    expect(shapeReply(state, OFFERED).message).toEqual({
      role: 'assistant',
      content: '',
      tool_calls: [
        { function: { name: 'bash', arguments: { command: 'echo one' } } },
        { function: { name: 'read_file', arguments: { path: 'notes.txt' } } },
      ],
    });
  });

  it('any split of the arguments into chunks gives the same call', () => {
    // `__proto__` is the one key the validated message drops (no prototype games): tested apart below.
    const args = fc.dictionary(
      fc.string({ minLength: 1, maxLength: 12 }).filter((key) => key !== '__proto__'),
      fc.oneof(fc.string(), fc.integer(), fc.boolean()),
    );
    fc.assert(
      fc.property(args, fc.array(fc.nat(), { maxLength: 12 }), (value, cuts) => {
        const text = JSON.stringify({ command: 'x', ...value });
        const points = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b);
        const pieces = [0, ...points, text.length]
          .slice(1)
          .map((end, i, ends) => text.slice(i === 0 ? 0 : ends[i - 1], end));
        const chunks = [
          delta({
            tool_calls: [
              { index: 0, id: 'call_1', type: 'function', function: { name: 'bash', arguments: '' } },
            ],
          }),
          ...pieces.map((piece) => delta({ tool_calls: [{ index: 0, function: { arguments: piece } }] })),
          delta({}, 'tool_calls'),
        ];
        const message = shaped(chunks).message;
        expect(message.tool_calls).toEqual([{ function: { name: 'bash', arguments: JSON.parse(text) } }]);
      }),
      { numRuns: Number(process.env.FC_RUNS ?? 100) },
    );
  });

  it('drops a __proto__ argument rather than letting it reach an object’s prototype', () => {
    const args = '{"command": "ls", "__proto__": {"polluted": true}}';
    const message = shaped([
      delta({ tool_calls: [{ index: 0, id: 'c', function: { name: 'bash', arguments: args } }] }),
      delta({}, 'tool_calls'),
    ]).message;
    const got = message.tool_calls?.[0]?.function.arguments ?? {};
    expect(got).toEqual({ command: 'ls' });
    expect(Object.getPrototypeOf(got)).toBe(Object.prototype);
    expect(({} as { polluted?: boolean }).polluted).toBeUndefined();
  });

  it('counts reasoning_content and reasoning as thinking, never in the reply; <think> too', () => {
    const reply = shaped([
      delta({ reasoning_content: 'secret one ' }),
      delta({ reasoning: 'secret two' }),
      delta({ content: '<think>secret three</think>The answer.' }),
      delta({}, 'stop'),
    ]);
    expect(reply.message).toEqual({ role: 'assistant', content: 'The answer.' });
    expect(reply.thinking).toContain('secret one');
    expect(reply.thinking).toContain('secret two');
    expect(reply.thinking).toContain('secret three');
  });

  it('reads calls written in the content, as with Ollama', () => {
    const reply = shaped([
      delta({ content: '<tool_call>{"name": "bash", "arguments": ' }),
      delta({ content: '{"command": "ls"}}</tool_call>' }),
      delta({}, 'stop'),
    ]);
    expect(reply.message.tool_calls).toEqual([{ function: { name: 'bash', arguments: { command: 'ls' } } }]);
    expect(reply.message.content).toBe('');
  });

  it('says so when the stream ends without a finish_reason, or a chunk is not a chunk', () => {
    expect(() => shaped([delta({ content: 'half an ans' })])).toThrow(
      /stream ended before the model was done/,
    );
    expect(() => fold([{ choices: 'nope' }])).toThrow(ModelBrokerError);
    expect(() => fold([delta({ tool_calls: [{ index: 1000 }] })])).toThrow(/not a valid chat message/);
  });
});

describe('the history in OpenAI’s shape', () => {
  it('gives calls stable ids, arguments as JSON text, and tool results the id they answer', () => {
    const messages = toOpenAIMessages([
      { role: 'system', content: 'sys' },
      { role: 'user', content: 'hi' },
      {
        role: 'assistant',
        content: '',
        tool_calls: [
          { function: { name: 'bash', arguments: { command: 'ls' } } },
          { function: { name: 'read_file', arguments: { path: 'a' } } },
        ],
      },
      { role: 'tool', tool_name: 'read_file', content: 'A' },
      { role: 'tool', tool_name: 'bash', content: 'a\nb' },
      { role: 'assistant', content: 'oops <tool_call>' },
      { role: 'tool', tool_name: 'tool_call', content: 'Error: format' },
    ]);
    expect(messages).toEqual([
      { role: 'system', content: 'sys' },
      { role: 'user', content: 'hi' },
      {
        role: 'assistant',
        content: null,
        tool_calls: [
          { id: 'call_2_0', type: 'function', function: { name: 'bash', arguments: '{"command":"ls"}' } },
          { id: 'call_2_1', type: 'function', function: { name: 'read_file', arguments: '{"path":"a"}' } },
        ],
      },
      { role: 'tool', tool_call_id: 'call_2_1', content: 'A' },
      { role: 'tool', tool_call_id: 'call_2_0', content: 'a\nb' },
      { role: 'assistant', content: 'oops <tool_call>' },
      // A note answering no call: servers refuse a tool message without its call.
      { role: 'user', content: '[tool_call result]\nError: format' },
    ]);
  });
});

describe('OpenAI-compatible errors in words', () => {
  const ctx = { url: 'http://gpu:8000/v1', model: 'qwen', timeoutMs: 5000, apiKeySet: true, now: 0 };
  const apiError = (status: number, body: object, headers: Record<string, string> = {}) =>
    APIError.generate(status, body, JSON.stringify(body), new Headers(headers));

  it('401 and 403: unauthorized, naming the key setting but never its value', () => {
    const e = classifyOpenAIError(apiError(401, { error: { message: 'Incorrect API key provided.' } }), ctx);
    expect(e.kind).toBe('unauthorized');
    expect(e.message).toBe(
      'the model server at http://gpu:8000/v1 refused the request (HTTP 401: Incorrect API key provided.); check SANDBOT_MODEL_API_KEY: the server does not accept the key it holds',
    );
    const unset = classifyOpenAIError(apiError(403, { error: { message: 'no' } }), {
      ...ctx,
      apiKeySet: false,
    });
    expect(unset.kind).toBe('unauthorized');
    expect(unset.message).toMatch(/set SANDBOT_MODEL_API_KEY to a key the server accepts$/);
  });

  it('429: rate_limited, with the retry-after in seconds (or as a date, or in ms)', () => {
    const body = { error: { message: 'Too many requests' } };
    expect(classifyOpenAIError(apiError(429, body, { 'retry-after': '17' }), ctx)).toMatchObject({
      kind: 'rate_limited',
      message:
        'the model server at http://gpu:8000/v1 is rate limiting requests (HTTP 429: Too many requests); retry after 17 s',
    });
    const date = new Date(30_000).toUTCString();
    expect(classifyOpenAIError(apiError(429, body, { 'retry-after': date }), ctx).message).toMatch(
      /retry after 30 s$/,
    );
    expect(classifyOpenAIError(apiError(429, body, { 'retry-after-ms': '1500' }), ctx).message).toMatch(
      /retry after 2 s$/,
    );
    expect(classifyOpenAIError(apiError(429, body), ctx).message).toMatch(/try again in a moment$/);
  });

  it('404 for the model: model_missing (OpenAI’s and vLLM’s shapes); 404 elsewhere: the URL', () => {
    const openai = apiError(404, {
      error: { message: 'The model `qwen` does not exist', code: 'model_not_found' },
    });
    expect(classifyOpenAIError(openai, ctx)).toMatchObject({
      kind: 'model_missing',
      message:
        'model qwen is not served by http://gpu:8000/v1: set SANDBOT_MODEL to a model it serves (GET http://gpu:8000/v1/models lists them)',
    });
    const vllm = apiError(404, { object: 'error', message: 'The model `qwen` does not exist.', code: 404 });
    expect(classifyOpenAIError(vllm, ctx).kind).toBe('model_missing');
    const path = classifyOpenAIError(apiError(404, { detail: 'Not Found' }), ctx);
    expect(path.kind).toBe('bad_response');
    expect(path.message).toMatch(/is SANDBOT_MODEL_URL the base of an OpenAI-compatible API/);
  });

  it('5xx: server_error with the server’s words; an error event mid-stream too', () => {
    expect(classifyOpenAIError(apiError(503, { error: { message: 'overloaded' } }), ctx)).toMatchObject({
      kind: 'server_error',
      message: 'the model server at http://gpu:8000/v1 failed (HTTP 503): overloaded',
    });
    const mid = new APIError(undefined, { message: 'CUDA out of memory' }, undefined, undefined);
    expect(classifyOpenAIError(mid, ctx)).toMatchObject({
      kind: 'server_error',
      message: 'the model server at http://gpu:8000/v1 failed: CUDA out of memory',
    });
  });

  it('unreachable, cut, garbage, timeout and cancel', () => {
    const refused = new APIConnectionError({
      cause: new TypeError('fetch failed', {
        cause: Object.assign(new Error('x'), { code: 'ECONNREFUSED' }),
      }),
    });
    expect(classifyOpenAIError(refused, ctx)).toMatchObject({
      kind: 'unreachable',
      message: 'cannot reach the model server at http://gpu:8000/v1: connection refused',
    });
    const cut = new TypeError('terminated', {
      cause: Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' }),
    });
    expect(classifyOpenAIError(cut, ctx)).toMatchObject({
      kind: 'bad_response',
      message:
        'the model server at http://gpu:8000/v1 ended its answer before it was complete (connection closed by the server)',
    });
    const garbage = new SyntaxError('Error reading response: malformed server-sent event JSON.');
    expect(classifyOpenAIError(garbage, ctx).kind).toBe('bad_response');
    expect(classifyOpenAIError(new DOMException('late', 'TimeoutError'), ctx).message).toBe(
      'the model server at http://gpu:8000/v1 did not answer within 5 s',
    );
    expect(classifyOpenAIError(new DOMException('stop', 'AbortError'), ctx).kind).toBe('cancelled');
  });
});

describe('Ollama’s 401, 403 and 429 in words', () => {
  const ctx = { host: 'http://127.0.0.1:11434', model: 'qwen2.5:7b', timeoutMs: 5000 };
  const responseError = (status: number, message: string) =>
    Object.assign(new Error(message), { name: 'ResponseError', status_code: status });

  it('unauthorized and rate_limited, with what to do', () => {
    const denied = classifyOllamaError(responseError(401, 'unauthorized'), ctx);
    expect(denied.kind).toBe('unauthorized');
    expect(denied.message).toMatch(
      /HTTP 401: unauthorized.*SANDBOT_MODEL_PROVIDER=openai with SANDBOT_MODEL_API_KEY/,
    );
    const busy = classifyOllamaError(responseError(429, 'server busy, retry after 5 s'), ctx);
    expect(busy.kind).toBe('rate_limited');
    expect(busy.message).toBe(
      'Ollama at http://127.0.0.1:11434 is busy (HTTP 429: server busy); retry after 5 s',
    );
  });
});
