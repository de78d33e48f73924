import type { ChatCompletionMessageParam } from 'openai/resources/chat/completions';
import { z } from 'zod';
import type { ChatMessage } from '../../../contracts/protocol/agent.js';
import { ModelBrokerError } from '../errors.js';
import { describeUntrusted, type ReplyState } from '../reply.js';

/**
 * Pure parts of a call to an OpenAI-compatible server: the history in its message shape, and the
 * streamed chunks folded into the broker's common ReplyState (then shaped like Ollama's answers).
 * Tool calls arrive in pieces (vLLM, llama-server): the first delta of a call carries its `index`, id
 * and name, later ones only more of the arguments string, by the same `index`.
 */

/** Most tool calls one answer may hold; an index past it is a broken server, not a model's wish. */
const MAX_CALLS = 64;

const nullishString = z.string().nullish();

/** The fields of one streamed chunk the broker reads; everything else is ignored. */
const Chunk = z.object({
  choices: z
    .array(
      z.object({
        delta: z
          .object({
            content: nullishString,
            /** vLLM's, DeepSeek's and llama-server's thinking field; `reasoning` on some others. */
            reasoning_content: nullishString,
            reasoning: nullishString,
            tool_calls: z
              .array(
                z.object({
                  index: z
                    .number()
                    .int()
                    .min(0)
                    .max(MAX_CALLS - 1),
                  id: nullishString,
                  function: z
                    .object({
                      name: nullishString,
                      // Some servers send the arguments whole, as an object.
                      arguments: z.union([z.string(), z.record(z.string(), z.unknown())]).nullish(),
                    })
                    .nullish(),
                }),
              )
              .nullish(),
          })
          .nullish(),
        finish_reason: nullishString,
      }),
    )
    .nullish(),
  usage: z.object({ prompt_tokens: z.number(), completion_tokens: z.number() }).nullish(),
});

export interface PartialCall {
  name: string;
  arguments: string;
}

export interface OpenAIReplyState {
  content: string;
  thinking: string;
  /** By the server's `index`. */
  calls: PartialCall[];
  finishReason?: string;
  promptTokens: number;
  completionTokens: number;
}

export function emptyOpenAIReply(): OpenAIReplyState {
  return { content: '', thinking: '', calls: [], promptTokens: 0, completionTokens: 0 };
}

/** Folds one chunk into the state; returns the new text (for progress) alongside. */
export function addOpenAIChunk(
  state: OpenAIReplyState,
  raw: unknown,
): { state: OpenAIReplyState; delta: string } {
  const parsed = Chunk.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ModelBrokerError(
      'bad_response',
      `the model answered something that is not a valid chat message: a streamed chunk ${describeUntrusted(raw)} (${issue?.path.join('.')}: ${issue?.message})`,
    );
  }
  const chunk = parsed.data;
  const choice = chunk.choices?.[0];
  const delta = choice?.delta;
  const calls = [...state.calls];
  for (const piece of delta?.tool_calls ?? []) {
    const before = calls[piece.index] ?? { name: '', arguments: '' };
    const name = piece.function?.name ?? '';
    const args = piece.function?.arguments ?? '';
    calls[piece.index] = {
      // Servers send the name once; one that repeats it whole is not asking for a longer name.
      name: name === '' || name === before.name ? before.name : before.name + name,
      arguments: before.arguments + (typeof args === 'string' ? args : JSON.stringify(args)),
    };
  }
  const text = delta?.content ?? '';
  const next: OpenAIReplyState = {
    content: state.content + text,
    thinking: state.thinking + (delta?.reasoning_content ?? delta?.reasoning ?? ''),
    calls,
    promptTokens: chunk.usage?.prompt_tokens ?? state.promptTokens,
    completionTokens: chunk.usage?.completion_tokens ?? state.completionTokens,
  };
  const finish = choice?.finish_reason ?? state.finishReason;
  if (finish) next.finishReason = finish;
  return { state: next, delta: text };
}

/** The common state the broker shapes (thinking out, written calls read): done once a finish_reason came. */
export function toReplyState(state: OpenAIReplyState): ReplyState {
  return {
    content: state.content,
    thinking: state.thinking,
    // A hole (index 1 without 0) is a call that never arrived: left out rather than made up.
    toolCalls: state.calls
      .filter((call) => call !== undefined)
      .map((call) => ({ function: { name: call.name, arguments: call.arguments } })),
    done: state.finishReason !== undefined,
    ...(state.finishReason !== undefined ? { doneReason: state.finishReason } : {}),
    promptTokens: state.promptTokens,
    completionTokens: state.completionTokens,
  };
}

/**
 * The history in OpenAI's shape: assistant calls get ids (stable, from their place in the history, so
 * each request resends the same ones) and arguments as JSON text; each tool result names the call it
 * answers. A tool result answering no call (the broker's note on an unreadable call) becomes a user
 * message, since servers reject a tool message without its call.
 */
export function toOpenAIMessages(messages: readonly ChatMessage[]): ChatCompletionMessageParam[] {
  const pending: { id: string; name: string }[] = [];
  return messages.map((message, position): ChatCompletionMessageParam => {
    if (message.role === 'assistant') {
      pending.length = 0;
      const calls = (message.tool_calls ?? []).map((call, n) => {
        const id = `call_${position}_${n}`;
        pending.push({ id, name: call.function.name });
        return {
          id,
          type: 'function' as const,
          function: { name: call.function.name, arguments: JSON.stringify(call.function.arguments) },
        };
      });
      return calls.length > 0
        ? { role: 'assistant', content: message.content === '' ? null : message.content, tool_calls: calls }
        : { role: 'assistant', content: message.content };
    }
    if (message.role === 'tool') {
      const at = pending.findIndex((p) => message.tool_name === undefined || p.name === message.tool_name);
      const answered = at >= 0 ? pending.splice(at, 1)[0] : undefined;
      if (answered) return { role: 'tool', tool_call_id: answered.id, content: message.content };
      return { role: 'user', content: `[${message.tool_name ?? 'tool'} result]\n${message.content}` };
    }
    return { role: message.role, content: message.content };
  });
}
