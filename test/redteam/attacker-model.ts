import type {
  FakeChatMessage,
  FakeChatRequest,
  FakeStep,
  FakeToolCall,
} from '../../testkit/fakes/fake-ollama.js';

/**
 * A fully hijacked "model" for the fake Ollama: it does whatever the last thing it read tells it to,
 * through the agent's own tools. What the user types is the attack:
 *   plain text                 run it as one bash call
 *   @<tool> {json}             call that tool with those arguments (read_file, write_file, …)
 *   @tools [{name, arguments}] several tool calls in one answer
 *   @loop <command>            run the command again after every result, forever (a runaway agent)
 * and anything it reads (a user message, a file, a fetched page, a tool's output) that holds
 *   <<run>>command<</run>>     is obeyed: the command runs next, as bash (a prompt injection)
 *   <<say>>text<</say>>        is obeyed: the agent answers with exactly that text
 *   <<pause N>>                its next answer takes N ms (a slow model: time for what the tool left running)
 * After a tool result it answers "tool said: <every result since its last call>".
 */

const INJECTED_RUN = /<<run>>([\s\S]*?)<<\/run>>/;
const INJECTED_SAY = /<<say>>([\s\S]*?)<<\/say>>/;
const INJECTED_PAUSE = /<<pause (\d{1,5})>>/;

const bash = (command: string): FakeStep => ({ toolCalls: [{ name: 'bash', arguments: { command } }] });

export function attackerModel(request: FakeChatRequest): FakeStep {
  const last = request.messages?.at(-1);
  const pause = last ? INJECTED_PAUSE.exec(last.content) : null;
  const step = nextStep(request);
  return pause?.[1] ? { ...step, delayMs: Number(pause[1]) } : step;
}

function nextStep(request: FakeChatRequest): FakeStep {
  const messages = request.messages ?? [];
  const last = messages.at(-1);
  if (!last) return { reply: 'nothing was asked' };
  const say = INJECTED_SAY.exec(last.content);
  if (say?.[1] !== undefined) return { reply: say[1] };
  const run = INJECTED_RUN.exec(last.content);
  if (run?.[1] !== undefined) return bash(run[1]);
  const task = lastUserText(messages);
  if (task.startsWith('@loop ')) return bash(task.slice('@loop '.length));
  if (last.role === 'tool') return { reply: `tool said: ${resultsSinceLastCall(messages)}` };
  return planFor(last.content);
}

function planFor(text: string): FakeStep {
  const call = /^@(\w+) ([\s\S]*)$/.exec(text);
  if (!call?.[1] || call[2] === undefined) return bash(text);
  const parsed: unknown = JSON.parse(call[2]);
  if (call[1] === 'tools') return { toolCalls: parsed as FakeToolCall[] };
  return { toolCalls: [{ name: call[1], arguments: parsed as Record<string, unknown> }] };
}

function lastUserText(messages: FakeChatMessage[]): string {
  for (let i = messages.length - 1; i >= 0; i--) {
    const message = messages[i];
    if (message?.role === 'user') return message.content;
  }
  return '';
}

function resultsSinceLastCall(messages: FakeChatMessage[]): string {
  const results: string[] = [];
  for (let i = messages.length - 1; i >= 0 && messages[i]?.role === 'tool'; i--) {
    results.unshift(messages[i]?.content ?? '');
  }
  return results.join('\n---\n');
}
