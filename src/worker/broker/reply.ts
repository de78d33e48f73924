import { z } from 'zod';
import { ChatMessage } from '../../contracts/protocol/agent.js';
import { ModelBrokerError } from './errors.js';
import { type ShapedAnswer, shapeAnswer } from './tool-call-shapes.js';

/**
 * Pure parts of a model call: what the broker sends (system prompt first, the sandbox's own system
 * messages dropped) and how streamed chunks become one validated assistant message.
 */

/** The sandbox is untrusted: it must not be able to add or replace system instructions. */
export function buildRequestMessages(system: string, messages: readonly ChatMessage[]): ChatMessage[] {
  return [{ role: 'system', content: system }, ...messages.filter((m) => m.role !== 'system')];
}

/** The fields of one streamed /api/chat chunk the broker reads; everything else is ignored. */
const ChatChunk = z.object({
  message: z
    .object({
      content: z.string().optional(),
      /** A reasoning model's thinking (Ollama streams it apart from the content): never shown. */
      thinking: z.string().optional(),
      tool_calls: z.array(z.unknown()).optional(),
    })
    .optional(),
  done: z.boolean().optional(),
  done_reason: z.string().optional(),
  prompt_eval_count: z.number().optional(),
  eval_count: z.number().optional(),
});

export interface ReplyState {
  content: string;
  thinking: string;
  toolCalls: unknown[];
  done: boolean;
  doneReason?: string;
  promptTokens: number;
  completionTokens: number;
}

export function emptyReply(): ReplyState {
  return { content: '', thinking: '', toolCalls: [], done: false, promptTokens: 0, completionTokens: 0 };
}

/** Folds one chunk into the state; returns the new text (for progress) alongside. */
export function addChunk(state: ReplyState, raw: unknown): { state: ReplyState; delta: string } {
  const parsed = ChatChunk.safeParse(raw);
  if (!parsed.success) {
    throw notAChatMessage(`a streamed chunk ${describeUntrusted(raw)} (${parsed.error.issues[0]?.message})`);
  }
  const chunk = parsed.data;
  const delta = chunk.message?.content ?? '';
  const next: ReplyState = {
    content: state.content + delta,
    thinking: state.thinking + (chunk.message?.thinking ?? ''),
    toolCalls: [...state.toolCalls, ...(chunk.message?.tool_calls ?? [])],
    done: state.done || chunk.done === true,
    doneReason: chunk.done_reason ?? state.doneReason,
    promptTokens: chunk.prompt_eval_count ?? state.promptTokens,
    completionTokens: chunk.eval_count ?? state.completionTokens,
  };
  return { state: next, delta };
}

/** The assembled assistant message, validated like any other boundary (calls in the text taken out). */
export function finishReply(state: ReplyState, offered: readonly string[] = []): ChatMessage {
  return shapeReply(state, offered).message;
}

export interface ShapedReply extends Pick<ShapedAnswer, 'unreadable' | 'thinking'> {
  message: ChatMessage;
}

/**
 * The assembled answer: thinking taken out, calls written in the text (to the `offered` tools) made
 * into `tool_calls`, and the calls that could not be read listed (their text is not in the message).
 */
export function shapeReply(state: ReplyState, offered: readonly string[]): ShapedReply {
  if (!state.done) throw notAChatMessage('the stream ended before the model was done');
  const shaped = shapeAnswer(
    { content: state.content, thinking: state.thinking, toolCalls: state.toolCalls },
    offered,
  );
  const candidate = {
    role: 'assistant',
    content: shaped.content,
    ...(shaped.toolCalls.length > 0 ? { tool_calls: shaped.toolCalls } : {}),
  };
  const parsed = ChatMessage.safeParse(candidate);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw notAChatMessage(
      `${issue?.path.join('.') || 'message'}: ${issue?.message} in ${describeUntrusted(candidate)}`,
    );
  }
  // A call to a tool that does not exist is passed on: the runtime answers it with a tool error naming
  // the real tools, which lets a small model correct itself instead of failing the whole turn.
  return { message: parsed.data, unreadable: shaped.unreadable, thinking: shaped.thinking };
}

function notAChatMessage(detail: string): ModelBrokerError {
  return new ModelBrokerError(
    'bad_response',
    `the model answered something that is not a valid chat message: ${detail}`,
  );
}

/** A short rendering of untrusted data for an error message. */
export function describeUntrusted(value: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}
