import type { Approval } from '../../src/contracts/approvals/approval.js';
import type { ApprovalCard } from '../../src/contracts/approvals/approval-card.js';
import type { OutboundEvent } from '../../src/contracts/protocol/outbound.js';
import type { FakeChatRequest, FakeStep } from '../../testkit/fakes/fake-ollama.js';
import { openSse, postMessage, type SseClient } from './sse.js';

/** The approvals tests' API token (the web API with it is an approver). */
export const APPROVALS_TOKEN = 'approvals-test-token-0123456789abcdef';
export const APPROVALS_AUTH = { authorization: `Bearer ${APPROVALS_TOKEN}` };

type Message = FakeChatRequest['messages'][number];
const resultLine = (m: Message) => `${m.tool_name}: ${m.content}`;

/**
 * The fake model of the approvals tests, by the turn's own message: `ASK <json>` calls request_access
 * with that (an array: several calls in one answer), then runs the command of a `\nTHEN <command>` line
 * after it; `DELEGATE a b` starts a sub-agent per word at once;
 * anything else runs as a bash command. After tool results it answers with what it read.
 */
export function approvalScript(request: FakeChatRequest): FakeStep {
  const messages = request.messages.filter((m) => m.role !== 'system');
  // The turn's own message (the history holds the earlier ones).
  const text = [...messages].reverse().find((m) => m.role === 'user')?.content ?? '';
  const last = messages.at(-1);
  const then = /\nTHEN (.*)$/s.exec(text)?.[1];
  if (last?.role === 'tool' && last.tool_name === 'request_access' && then) {
    return { toolCalls: [{ name: 'bash', arguments: { command: then } }] };
  }
  if (last?.role === 'tool') {
    const from = messages.map((m) => m.role).lastIndexOf('assistant');
    return {
      reply: `model saw: ${messages
        .slice(from + 1)
        .map(resultLine)
        .join(' | ')}`,
    };
  }
  if (/You are sub-agent/.test(text)) return { reply: 'sub-agent done' };
  if (text.startsWith('DELEGATE ')) {
    const tasks = text.slice('DELEGATE '.length).split(' ');
    return { toolCalls: tasks.map((task) => ({ name: 'delegate', arguments: { task } })) };
  }
  if (text.startsWith('ASK ')) {
    const parsed = JSON.parse(text.slice(4).split('\nTHEN ')[0] ?? '') as
      | Record<string, unknown>
      | Record<string, unknown>[];
    const calls = Array.isArray(parsed) ? parsed : [parsed];
    return { toolCalls: calls.map((args) => ({ name: 'request_access', arguments: args })) };
  }
  return { toolCalls: [{ name: 'bash', arguments: { command: text } }] };
}

/** The message that makes the fake model call request_access with `args`. */
export const ask = (args: unknown) => `ASK ${JSON.stringify(args)}`;

export type CardEvent = Extract<OutboundEvent, { type: 'approval' }> & { card: ApprovalCard };

/** The web API of a stack, with the token: event streams, messages, decisions. */
export function approvalsClient(url: () => string) {
  return {
    events: (session: string) =>
      openSse(`${url()}/api/conversations/${session}/events?token=${APPROVALS_TOKEN}`),
    send: (session: string, text: string) => postMessage(url(), session, text, 'tester', APPROVALS_AUTH),
    decide: (id: string, decision: string, headers: Record<string, string> = APPROVALS_AUTH) =>
      fetch(`${url()}/api/approvals/${id}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify({ decision }),
      }),
  };
}

/** The first approval event in `status` the stream carries. */
export const cardIn = (sse: SseClient, status: Approval['status'], timeoutMs?: number) =>
  sse.waitFor((e) => e.type === 'approval' && e.approval.status === status, timeoutMs) as Promise<CardEvent>;

/** The text of the turn's reply (a sub-agent's "🤖 … finished." in its parent's stream is skipped). */
export async function replyIn(sse: SseClient): Promise<string> {
  const end = await sse.waitFor(
    (e) => (e.type === 'reply' && !e.text.startsWith('🤖')) || e.type === 'error',
  );
  if (end.type !== 'reply') throw new Error(`turn failed: ${JSON.stringify(end)}`);
  return end.text;
}
