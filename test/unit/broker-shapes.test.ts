import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ChatMessage } from '../../src/contracts/protocol/agent.js';
import { FORMAT_RETRIES, ModelBroker } from '../../src/worker/broker/model-broker.js';
import { type FakeOllama, startFakeOllama } from '../../testkit/fakes/fake-ollama.js';

/** The broker with models that write their tool calls in the text, and think out loud. */

const MODEL = 'qwen3:4b';
const hello: ChatMessage[] = [{ role: 'user', content: 'list the files' }];
const skill = {
  type: 'function' as const,
  function: { name: 'weather', description: 'The weather', parameters: { type: 'object', properties: {} } },
};

let fake: FakeOllama;
let broker: ModelBroker;

beforeAll(async () => {
  fake = await startFakeOllama({ models: [MODEL] });
  broker = new ModelBroker({ host: fake.url, timeoutMs: 10_000 });
});
afterAll(() => fake.close());
beforeEach(() => {
  fake.requests.length = 0;
});

describe('ModelBroker.chat with calls written in the text', () => {
  it('makes a Hermes-style <tool_call> a tool call, with the thinking out and counted', async () => {
    fake.setScript([
      {
        thinking: 'The user wants files.',
        reply:
          '<think>ls it is</think>\n<tool_call>\n{"name": "bash", "arguments": {"command": "ls"}}\n</tool_call>',
      },
    ]);
    const result = await broker.chat({ model: MODEL, messages: hello });
    expect(result.message).toEqual({
      role: 'assistant',
      content: '',
      tool_calls: [{ function: { name: 'bash', arguments: { command: 'ls' } } }],
    });
    expect(result.thinkingChars).toBe('The user wants files.\nls it is'.length);
    expect(result.modelCalls).toBe(1);
  });

  it('makes a Llama-style bare JSON call to an offered skill tool a call, but not one to another name', async () => {
    fake.setScript([
      { reply: '{"name": "weather", "parameters": {"city": "Oslo"}}' },
      { reply: '{"name": "weather", "parameters": {"city": "Oslo"}}' },
    ]);
    const offered = await broker.chat({ model: MODEL, messages: hello, tools: [skill] });
    expect(offered.message.tool_calls).toEqual([
      { function: { name: 'weather', arguments: { city: 'Oslo' } } },
    ]);
    const plain = await broker.chat({ model: MODEL, messages: hello });
    expect(plain.message).toEqual({
      role: 'assistant',
      content: '{"name": "weather", "parameters": {"city": "Oslo"}}',
    });
  });

  it('answers an unreadable call with the exact format and asks again; the retry counts', async () => {
    fake.setScript([
      { reply: '<tool_call>{"name": "bash", "arguments": {"command": "ls"}</tool_call>' },
      { reply: '<tool_call>{"name": "bash", "arguments": {"command": "ls"}}</tool_call>' },
    ]);
    const result = await broker.chat({ model: MODEL, messages: hello });
    expect(result.message.tool_calls).toEqual([{ function: { name: 'bash', arguments: { command: 'ls' } } }]);
    expect(result.modelCalls).toBe(2);
    const retry = fake.chatRequests()[1]?.messages ?? [];
    expect(retry.slice(-2)).toEqual([
      {
        role: 'assistant',
        content: '<tool_call>{"name": "bash", "arguments": {"command": "ls"}</tool_call>',
      },
      expect.objectContaining({ role: 'tool', tool_name: 'tool_call' }),
    ]);
    expect(retry.at(-1)?.content).toContain(
      '<tool_call>{"name": "bash", "arguments": {"command": "ls -la"}}</tool_call>',
    );
    expect(retry.at(-1)?.content).toContain('not valid JSON');
  });

  it('gives up after the retries and answers the text as written', async () => {
    const broken = '<tool_call>{"name": "bash", "arguments": </tool_call>';
    fake.setScript(Array.from({ length: FORMAT_RETRIES + 1 }, () => ({ reply: broken })));
    const result = await broker.chat({ model: MODEL, messages: hello });
    expect(result.message).toEqual({ role: 'assistant', content: broken });
    expect(result.modelCalls).toBe(FORMAT_RETRIES + 1);
    expect(fake.chatRequests()).toHaveLength(FORMAT_RETRIES + 1);
  });

  it('never answers thinking, from the field or from <think> in the text', async () => {
    fake.setScript([{ thinking: 'secret field', reply: '<think>secret tag</think>\n\nThe answer is 4.' }]);
    const result = await broker.chat({ model: MODEL, messages: hello });
    expect(result.message).toEqual({ role: 'assistant', content: 'The answer is 4.' });
    expect(JSON.stringify(result.message)).not.toContain('secret');
  });
});
