import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { webConversationId } from '../../src/contracts/conversation/id.js';
import type { ChatMessage } from '../../src/contracts/protocol/agent.js';
import { calibrate } from '../../src/worker/broker/context-fit.js';
import { fixedContextSizes, OllamaContextSizes } from '../../src/worker/broker/context-size.js';
import { ContextFitter, type ContextFolded } from '../../src/worker/broker/context-window.js';
import { type ChatRequest, type ChatResult, ModelBroker } from '../../src/worker/broker/model-broker.js';
import { type FakeChatRequest, type FakeOllama, startFakeOllama } from '../../testkit/fakes/fake-ollama.js';

// The broker fitted to a model's context window, against the fake Ollama (a real HTTP server).

const MODEL = 'qwen2.5:7b';
const SUMMARY = 'The user and the assistant talked about numbered topics.';
const conversation = webConversationId('fitted');

let fake: FakeOllama;
let broker: ModelBroker;

const isSummaryRequest = (request: FakeChatRequest) =>
  request.messages[0]?.content.startsWith('You condense') === true;

beforeAll(async () => {
  fake = await startFakeOllama({ models: [MODEL], contextLength: 2048 });
  broker = new ModelBroker({ host: fake.url, timeoutMs: 10_000 });
});
afterAll(() => fake.close());
beforeEach(() => {
  fake.requests.length = 0;
  fake.setContextLength(2048);
  fake.setScript((request) => (isSummaryRequest(request) ? { reply: SUMMARY } : { reply: 'answer' }));
});

function fitter(cap = 8192) {
  const folds: ContextFolded[] = [];
  const sizes = new OllamaContextSizes(fake.url, cap, 5000);
  return { folds, fitted: new ContextFitter(broker, { sizes }), onFold: (e: ContextFolded) => folds.push(e) };
}

/** `turns` exchanges of about 600 characters each, then the question at hand. */
function longHistory(turns: number): ChatMessage[] {
  const messages: ChatMessage[] = [];
  for (let i = 0; i < turns; i++) {
    messages.push({ role: 'user', content: `question ${i}: ${'q'.repeat(300)}` });
    messages.push({ role: 'assistant', content: `answer ${i}: ${'a'.repeat(300)}` });
  }
  messages.push({ role: 'user', content: 'the question at hand' });
  return messages;
}

const options = (request: FakeChatRequest) => request.options as { num_ctx?: number } | undefined;

describe('the broker within a model’s context window', () => {
  it('names the window Ollama reports in every request, asking /api/show once per model', async () => {
    const { fitted } = fitter();
    await fitted.chat({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] });
    await fitted.chat({ model: MODEL, messages: [{ role: 'user', content: 'again' }] });
    expect(fake.chatRequests().map((r) => options(r)?.num_ctx)).toEqual([2048, 2048]);
    expect(fake.requests.filter((r) => r.path === '/api/show')).toHaveLength(1);
  });

  it('caps the window at the setting, and uses the setting when the model does not say', async () => {
    fake.setContextLength(131_072);
    await fitter(8192).fitted.chat({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] });
    fake.setContextLength(undefined);
    await fitter(6000).fitted.chat({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] });
    const unknown = new OllamaContextSizes('http://127.0.0.1:9', 5000, 1000);
    expect(await unknown.of(MODEL)).toBe(5000);
    expect(fake.chatRequests().map((r) => options(r)?.num_ctx)).toEqual([8192, 6000]);
  });

  it('sends a conversation that fits as it is', async () => {
    const { fitted, folds, onFold } = fitter();
    const messages = longHistory(1);
    const result = await fitted.chat({
      model: MODEL,
      messages,
      fit: { conversation, summaryAllowed: true, onFold },
    });
    expect(result.modelCalls).toBe(1);
    expect(folds).toEqual([]);
    expect(fake.chatRequests()[0]?.messages.slice(1)).toEqual(messages);
  });

  it('folds the oldest turns of a long one into a summary the model writes, counted in the turn', async () => {
    const { fitted, folds, onFold } = fitter();
    const messages = longHistory(12);
    const result = await fitted.chat({
      model: MODEL,
      messages,
      fit: { conversation, summaryAllowed: true, onFold },
    });
    const [summaryRequest, request] = fake.chatRequests();
    // The summary request: its own instructions, the folded messages as a transcript, no tools.
    expect(summaryRequest && isSummaryRequest(summaryRequest)).toBe(true);
    expect(summaryRequest?.tools ?? []).toEqual([]);
    expect(summaryRequest?.messages[1]?.content).toContain('question 0:');
    expect(options(summaryRequest as FakeChatRequest)?.num_ctx).toBe(2048);
    // The request: the system prompt first, the summary, then the newest messages, the question last.
    const sent = request?.messages ?? [];
    expect(sent[0]?.role).toBe('system');
    expect(sent[0]?.content).toMatch(/^You are sandbot/);
    expect(sent[1]?.content).toContain(SUMMARY);
    expect(sent.at(-1)?.content).toBe('the question at hand');
    expect(sent.length).toBeLessThan(messages.length);
    expect(sent.slice(2)).toEqual(messages.slice(messages.length - (sent.length - 2)));
    expect(result.modelCalls).toBe(2);
    expect(folds).toHaveLength(1);
    expect(folds[0]).toMatchObject({ contextTokens: 2048, summarized: true, summaryChars: SUMMARY.length });
    expect(folds[0]?.folded).toBe(messages.length - (sent.length - 2));
    expect(folds[0]?.tokensAfter).toBeLessThan(folds[0]?.tokensBefore ?? 0);
  });

  it('leaves the oldest turns out with a marker when the summary fails', async () => {
    fake.setScript((request) =>
      isSummaryRequest(request) ? { status: 500, error: 'out of memory' } : { reply: 'answer' },
    );
    const { fitted, folds, onFold } = fitter();
    const result = await fitted.chat({
      model: MODEL,
      messages: longHistory(12),
      fit: { conversation, summaryAllowed: true, onFold },
    });
    expect(result.message.content).toBe('answer');
    expect(fake.chatRequests().at(-1)?.messages[1]?.content).toMatch(
      /^\[earlier conversation omitted: \d+ messages\]$/,
    );
    expect(folds[0]).toMatchObject({ summarized: false, summaryChars: 0 });
    expect(folds[0]?.error).toContain('out of memory');
  });

  it('asks for no summary when the turn has no model call left for it', async () => {
    const { fitted, folds, onFold } = fitter();
    const result = await fitted.chat({
      model: MODEL,
      messages: longHistory(12),
      fit: { conversation, summaryAllowed: false, onFold },
    });
    expect(result.modelCalls).toBe(1);
    expect(fake.chatRequests().filter(isSummaryRequest)).toEqual([]);
    expect(fake.chatRequests()[0]?.messages[1]?.content).toContain('[earlier conversation omitted:');
    expect(folds[0]?.summarized).toBe(false);
  });

  it('counts on more tokens than estimated once the server has counted more', async () => {
    // A server whose tokenizer counts twice the estimate: the same request then has to fold.
    const asked: ChatRequest[] = [];
    const chat = async (request: ChatRequest): Promise<ChatResult> => {
      asked.push(request);
      const chars = JSON.stringify(request.messages).length + (request.system ?? '').length + 2100;
      return {
        message: { role: 'assistant', content: 'ok' },
        promptTokens: Math.ceil((2 * chars) / 3),
        completionTokens: 1,
        modelCalls: 1,
        durationMs: 1,
        thinkingChars: 0,
      };
    };
    const fitted = new ContextFitter({ chat }, { sizes: fixedContextSizes(8192) });
    const messages = longHistory(12);
    await fitted.chat({ model: MODEL, messages });
    expect(asked.map((r) => r.withoutTools ?? false)).toEqual([false]);
    await fitted.chat({ model: MODEL, messages });
    expect(asked.map((r) => r.withoutTools ?? false)).toEqual([false, true, false]);
    expect(asked.map((r) => r.contextTokens)).toEqual([8192, 8192, 8192]);
  });

  it('calibrates only upwards, within reason', () => {
    expect(calibrate(1, 1000, 1500)).toBe(1.5);
    expect(calibrate(1.5, 1000, 800)).toBe(1.5); // a cached prompt counts fewer: no evidence
    expect(calibrate(1, 1000, 9000)).toBe(2);
    expect(calibrate(1, 1000, undefined)).toBe(1);
    expect(calibrate(1, 10, 500)).toBe(1); // too small to say
  });
});
