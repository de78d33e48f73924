import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FakeChatRequest, FakeStep } from '../../testkit/fakes/fake-ollama.js';
import { testInstance } from '../../testkit/redis.js';
import { replyText } from '../helpers/shell-model.js';
import { type ScriptedStack, startScriptedStack, testConfig } from '../helpers/stack.js';

/**
 * Through the real stack, a fake small model that writes its tool calls in the text (Qwen/Hermes
 * `<tool_call>` tags, Llama-style bare JSON) and thinks out loud: the calls really run in the sandbox,
 * and the thinking reaches neither the chat nor the history sent back to the model.
 */

function sloppyModel(request: FakeChatRequest): FakeStep {
  const last = request.messages.at(-1);
  const text = last?.content ?? '';
  if (last?.role === 'tool')
    return { reply: `<think>pondering ${text.length}</think>\n\ntool said: ${text}` };
  const command = text.replace(/^\w+: /, '');
  if (text.startsWith('hermes: ')) {
    return {
      reply: `Let me run that.\n<tool_call>\n${JSON.stringify({ name: 'bash', arguments: { command } })}\n</tool_call>`,
    };
  }
  if (text.startsWith('llama: ')) return { reply: JSON.stringify({ name: 'bash', parameters: { command } }) };
  return {
    thinking: 'secret thinking field',
    reply: '<think>secret thinking tag</think>\n\nJust the answer.',
  };
}

const config = testConfig(testInstance('shapes'));
let stack: ScriptedStack;

beforeAll(async () => {
  stack = await startScriptedStack(config, sloppyModel);
});
afterAll(async () => {
  await stack?.stop();
});

/** Every message the worker sent the model, as text. */
const sentToModel = () => JSON.stringify(stack.ollama.chatRequests().map((r) => r.messages));

describe('tool calls as small models write them', () => {
  it('runs a Hermes-style <tool_call> written in the content in the sandbox', async () => {
    const text = await replyText(stack.url, 'shapes-hermes', 'hermes: echo hermes-$((6*7)) && id -u');
    expect(text).toBe('tool said: exit code 0\nhermes-42\n1000');
    expect(text).not.toContain('pondering');
    expect(sentToModel()).not.toContain('pondering');
    expect(sentToModel()).not.toContain('<tool_call>');
  });

  it('runs a Llama-style bare JSON call in the sandbox', async () => {
    const text = await replyText(stack.url, 'shapes-llama', 'llama: echo llama-$((5+5))');
    expect(text).toBe('tool said: exit code 0\nllama-10');
  });

  it('never lets <think> text or the thinking field reach the reply or the history', async () => {
    const text = await replyText(stack.url, 'shapes-think', 'what is it?');
    expect(text).toBe('Just the answer.');
    await replyText(stack.url, 'shapes-think', 'and again?');
    expect(sentToModel()).not.toContain('secret thinking');
  });
});
