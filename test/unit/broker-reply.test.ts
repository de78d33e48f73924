import { describe, expect, it } from 'vitest';
import { ModelBrokerError } from '../../src/worker/broker/errors.js';
import {
  addChunk,
  buildRequestMessages,
  emptyReply,
  finishReply,
  type ReplyState,
  shapeReply,
} from '../../src/worker/broker/reply.js';

function fold(chunks: unknown[]): ReplyState {
  return chunks.reduce<ReplyState>((state, chunk) => addChunk(state, chunk).state, emptyReply());
}

function thrown(fn: () => unknown): ModelBrokerError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ModelBrokerError);
    return error as ModelBrokerError;
  }
  throw new Error('expected a ModelBrokerError');
}

describe('buildRequestMessages', () => {
  it('puts the system prompt first and drops every other system message', () => {
    const built = buildRequestMessages('be helpful', [
      { role: 'system', content: 'evil' },
      { role: 'user', content: 'hi' },
      { role: 'system', content: 'more evil' },
    ]);
    expect(built).toEqual([
      { role: 'system', content: 'be helpful' },
      { role: 'user', content: 'hi' },
    ]);
  });
});

describe('reply assembly', () => {
  it('joins text, collects tool calls across chunks and keeps the token counts', () => {
    const state = fold([
      { message: { role: 'assistant', content: 'Let me ' } },
      { message: { role: 'assistant', content: 'look.' } },
      {
        message: {
          role: 'assistant',
          content: '',
          tool_calls: [{ function: { name: 'bash', arguments: { command: 'ls' } } }],
        },
      },
      {
        message: {
          role: 'assistant',
          content: '',
          tool_calls: [{ function: { index: 1, name: 'read_file', arguments: { path: 'a' } } }],
        },
      },
      {
        message: { role: 'assistant', content: '' },
        done: true,
        done_reason: 'stop',
        prompt_eval_count: 120,
        eval_count: 30,
      },
    ]);
    expect(finishReply(state)).toEqual({
      role: 'assistant',
      content: 'Let me look.',
      tool_calls: [
        { function: { name: 'bash', arguments: { command: 'ls' } } },
        { function: { name: 'read_file', arguments: { path: 'a' } } },
      ],
    });
    expect(state.promptTokens).toBe(120);
    expect(state.completionTokens).toBe(30);
  });

  it('hands each piece of text to the caller', () => {
    expect(addChunk(emptyReply(), { message: { content: 'abc' } }).delta).toBe('abc');
    expect(addChunk(emptyReply(), { done: true }).delta).toBe('');
  });

  it('refuses chunks and messages that are not chat messages', () => {
    expect(thrown(() => addChunk(emptyReply(), { message: { content: 7 } })).message).toMatch(
      /^the model answered something that is not a valid chat message: a streamed chunk/,
    );
    const badArgs = fold([
      { message: { tool_calls: [{ function: { name: 'bash', arguments: 'ls' } }] }, done: true },
    ]);
    // Arguments that are not JSON: not passed on, reported as unreadable (the broker asks again).
    expect(finishReply(badArgs).tool_calls).toBeUndefined();
    expect(shapeReply(badArgs, ['bash']).unreadable).toEqual(['the arguments of bash are not a JSON object']);
    expect(thrown(() => finishReply(fold([{ message: { content: 'x' } }]))).message).toContain(
      'the stream ended before the model was done',
    );
  });

  it('passes a call to a tool that is not offered on (the runtime answers it with a tool error)', () => {
    const state = fold([
      { message: { tool_calls: [{ function: { name: 'curl', arguments: {} } }] }, done: true },
    ]);
    expect(finishReply(state).tool_calls).toEqual([{ function: { name: 'curl', arguments: {} } }]);
  });
});
