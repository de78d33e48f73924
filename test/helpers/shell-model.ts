import type { OutboundEvent } from '../../src/contracts/protocol/outbound.js';
import type { FakeChatRequest, FakeStep } from '../../testkit/fakes/fake-ollama.js';
import { openSse, postMessage } from './sse.js';

/** A fake-model script: it runs the user's message as a bash command, then answers with the tool's output. */
export function shellModel(request: FakeChatRequest): FakeStep {
  const last = request.messages.at(-1);
  if (last?.role === 'tool') return { reply: `tool said: ${last.content}` };
  return { toolCalls: [{ name: 'bash', arguments: { command: last?.content ?? 'true' } }] };
}

/** Sends a message to a web conversation and waits for how its turn ends (the reply or the error). */
export async function turnEnd(
  baseUrl: string,
  session: string,
  text: string,
  timeoutMs?: number,
): Promise<OutboundEvent> {
  const sse = await openSse(`${baseUrl}/api/conversations/${session}/events`);
  try {
    await postMessage(baseUrl, session, text);
    return await sse.waitFor((e) => e.type === 'reply' || e.type === 'error', timeoutMs);
  } finally {
    sse.close();
  }
}

/** Like turnEnd, for a turn that must reply: its text, or a thrown error naming what came instead. */
export async function replyText(baseUrl: string, session: string, text: string): Promise<string> {
  const end = await turnEnd(baseUrl, session, text);
  if (end.type !== 'reply') throw new Error(`turn failed: ${JSON.stringify(end)}`);
  return end.text;
}
