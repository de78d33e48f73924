import type { ChatMessage } from '../../src/contracts/protocol/agent.js';
import { capText } from './output-cap.js';

export interface HistoryBounds {
  maxMessages: number;
  /** Bytes of the messages as JSON, the way they travel in a protocol line. */
  maxBytes: number;
}

export function messageBytes(message: ChatMessage): number {
  return Buffer.byteLength(JSON.stringify(message));
}

/**
 * The messages to send the model, oldest first, within the bounds and without system messages. The
 * newest message and the latest user message (the task at hand) are always kept; then as many of the
 * newest messages as fit. What is kept never starts with a tool result cut off from its call.
 */
export function boundHistory(messages: readonly ChatMessage[], bounds: HistoryBounds): ChatMessage[] {
  const all = messages.filter((m) => m.role !== 'system');
  const last = all.length - 1;
  if (last < 0) return [];
  let lastUser = -1;
  for (let i = last; i >= 0 && lastUser === -1; i--) if (all[i]?.role === 'user') lastUser = i;
  let count = 0;
  let bytes = 0;
  const charge = (i: number) => {
    count++;
    bytes += messageBytes(all[i] as ChatMessage) + 1;
  };
  charge(last);
  if (lastUser !== -1 && lastUser !== last) charge(lastUser);
  let start = last;
  while (start > 0) {
    const i = start - 1;
    if (i !== lastUser) {
      const size = messageBytes(all[i] as ChatMessage) + 1;
      if (count >= bounds.maxMessages || bytes + size > bounds.maxBytes) break;
      charge(i);
    }
    start = i;
  }
  const kept = all.slice(start);
  if (lastUser === -1 || start <= lastUser) {
    const firstUser = kept.findIndex((m) => m.role === 'user');
    return firstUser >= 0 ? kept.slice(firstUser) : withoutLeadingToolResults(kept);
  }
  // A gap: the latest user message, then the newest messages that fit.
  return [all[lastUser] as ChatMessage, ...withoutLeadingToolResults(kept)];
}

function withoutLeadingToolResults(messages: ChatMessage[]): ChatMessage[] {
  const first = messages.findIndex((m) => m.role !== 'tool');
  return first === -1 ? messages.slice(-1) : messages.slice(first);
}

/**
 * Shrinks one message to about `maxBytes`: its content keeps its beginning and end, and long string
 * arguments of its tool calls are shortened. Used on every message entering the history, so a single
 * huge message can never make a model request too long for one protocol line.
 */
export function clipMessage(message: ChatMessage, maxBytes: number): ChatMessage {
  if (messageBytes(message) <= maxBytes) return message;
  const calls = message.tool_calls?.map((call) => ({
    function: { name: call.function.name, arguments: clipArgs(call.function.arguments, maxBytes / 8) },
  }));
  const callBytes = calls ? Buffer.byteLength(JSON.stringify(calls)) : 0;
  const contentBudget = Math.max(64, Math.floor((maxBytes - callBytes) / 2) - 256);
  const clipped: ChatMessage = { ...message, content: capText(message.content, contentBudget).text };
  if (calls) clipped.tool_calls = calls;
  return clipped;
}

/** Shortens long string values (top level), e.g. for a tool_started line or a clipped tool call. */
export function clipArgs(args: Record<string, unknown>, maxStringBytes: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(args)) {
    if (typeof value === 'string') out[key] = capText(value, Math.max(64, Math.floor(maxStringBytes))).text;
    else if (Buffer.byteLength(JSON.stringify(value) ?? '') > maxStringBytes)
      out[key] = '[omitted: too large]';
    else out[key] = value;
  }
  return out;
}

/** The turn's messages as user chat messages; named only when more than one person spoke. */
export function userChatMessages(messages: readonly { user: string; text: string }[]): ChatMessage[] {
  const speakers = new Set(messages.map((m) => m.user));
  return messages.map((m) => ({
    role: 'user' as const,
    content: speakers.size > 1 ? `${m.user}: ${m.text}` : m.text,
  }));
}
