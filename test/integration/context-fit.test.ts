import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { webConversationId } from '../../src/contracts/conversation/id.js';
import { AuditJournal } from '../../src/shared/audit/journal.js';
import { parseEvents } from '../../src/shared/audit/summary.js';
import { ConversationStore } from '../../src/shared/queue/conversation-store.js';
import { InboundQueue } from '../../src/shared/queue/inbound-queue.js';
import { ContextFoldStore } from '../../src/worker/broker/context-fold-store.js';
import { defaultSystemPrompt } from '../../src/worker/broker/system-prompt.js';
import type { FakeChatMessage, FakeChatRequest, FakeStep } from '../../testkit/fakes/fake-ollama.js';
import { REDIS_URL, testInstance } from '../../testkit/redis.js';
import { webMessage } from '../helpers/messages.js';
import { openSse, postMessage } from '../helpers/sse.js';
import { type ScriptedStack, startScriptedStack, testConfig } from '../helpers/stack.js';

/**
 * A long conversation through the real stack (gateway, queue, worker, a real sandbox keeping the
 * history) against a fake Ollama whose model has a small context window: every request names it, and
 * once the conversation outgrows it the oldest turns are folded into a summary the model writes.
 */

const CONTEXT = 4096;
const TURNS = 16;
const dir = mkdtempSync(path.join(tmpdir(), 'sandbot-context-fit-'));
const config = testConfig(testInstance('context-fit'), { SANDBOT_AUDIT_DIR: dir });
const journal = new AuditJournal(dir, config.SANDBOT_INSTANCE);
const conversation = webConversationId('long-talk');

const isSummaryRequest = (request: FakeChatRequest) =>
  request.messages[0]?.content.startsWith('You condense') === true;
const question = (i: number) => `question ${i}: ${'q'.repeat(280)}`;

let summaries = 0;
/** Each question: a bash call printing 600 characters, then an answer of 300. Summaries are numbered. */
function script(request: FakeChatRequest): FakeStep {
  if (isSummaryRequest(request)) {
    summaries += 1;
    return { reply: `SUMMARY-${summaries}: the user asked numbered questions, each answered.` };
  }
  const last = request.messages.at(-1);
  if (last?.role === 'tool') return { reply: `answer: ${'r'.repeat(300)}` };
  return { toolCalls: [{ name: 'bash', arguments: { command: "printf '%0600d' 0" } }] };
}

let stack: ScriptedStack;
let redis: Redis;

beforeAll(async () => {
  stack = await startScriptedStack(config, script);
  stack.ollama.setContextLength(CONTEXT);
  redis = new Redis(REDIS_URL);
});

afterAll(async () => {
  redis?.disconnect();
  await stack?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function ask(text: string): Promise<string> {
  const sse = await openSse(`${stack.url}/api/conversations/long-talk/events`);
  try {
    await postMessage(stack.url, 'long-talk', text);
    const reply = await sse.waitFor((e) => e.type === 'reply' || e.type === 'error');
    return reply.type === 'reply' ? reply.text : `error: ${reply.type === 'error' ? reply.message : ''}`;
  } finally {
    sse.close();
  }
}

/** No tool result without the call it answers, right before it (or before the results ahead of it). */
function toolPairsWhole(messages: FakeChatMessage[]): boolean {
  return messages.every((m, i) => {
    if (m.role !== 'tool') return true;
    let j = i - 1;
    while (j >= 0 && messages[j]?.role === 'tool') j -= 1;
    return (messages[j]?.tool_calls?.length ?? 0) > 0;
  });
}

describe('a conversation longer than the model’s context window', () => {
  it('is sent within the window, its oldest turns folded into a kept summary', async () => {
    for (let i = 0; i < TURNS; i++) expect(await ask(question(i))).toMatch(/^answer: r+$/);

    const chats = stack.ollama.chatRequests();
    // Ollama's own small default never applies: every request names the window /api/show reported.
    expect(chats.map((r) => (r.options as { num_ctx?: number } | undefined)?.num_ctx)).toEqual(
      chats.map(() => CONTEXT),
    );
    const folds = chats.filter(isSummaryRequest);
    const requests = chats.filter((r) => !isSummaryRequest(r));
    expect(requests).toHaveLength(2 * TURNS);
    // The summary requests: the model was asked to condense the oldest messages, the first one first.
    expect(folds.length).toBeGreaterThan(0);
    expect(folds[0]?.tools ?? []).toEqual([]);
    expect(folds[0]?.messages[1]?.content).toContain('question 0:');

    requests.forEach((request, n) => {
      const turn = Math.floor(n / 2);
      // The system prompt always first and whole; the question at hand always there; pairs whole.
      expect(request.messages[0]).toEqual({ role: 'system', content: defaultSystemPrompt() });
      expect(request.messages.map((m) => m.content)).toContain(question(turn));
      expect(toolPairsWhole(request.messages)).toBe(true);
    });
    // Once folded, requests start with the summary instead of the oldest turns, and stop growing.
    const last = requests.at(-1)?.messages ?? [];
    expect(last[1]?.content).toMatch(
      /^\[Summary of the earlier conversation \(\d+ messages\)\]\nSUMMARY-\d+:/,
    );
    expect(last.map((m) => m.content)).not.toContain(question(0));
    // The whole conversation is far beyond the window (at 3 characters a token, generously), each request
    // within it: tools, system prompt and messages.
    const whole = TURNS * (question(0).length + 600 + 'answer: '.length + 300);
    expect(whole / 3).toBeGreaterThan(1.5 * CONTEXT);
    for (const request of requests) {
      expect(JSON.stringify([request.tools, request.messages]).length / 3).toBeLessThan(CONTEXT);
    }
    // A fold is kept: later requests carry its summary without asking for a new one each time.
    expect(folds.length * 2).toBeLessThan(
      requests.filter((r) => r.messages[1]?.content.includes('SUMMARY-')).length,
    );

    // The audit has each fold, with what it folded and kept; never the system prompt.
    let events = parseEvents((await journal.read(conversation)) ?? '');
    for (
      let i = 0;
      i < 100 && events.filter((e) => e.kind === 'model.context_folded').length < folds.length;
      i++
    ) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      events = parseEvents((await journal.read(conversation)) ?? '');
    }
    const folded = events.filter((e) => e.kind === 'model.context_folded');
    expect(folded).toHaveLength(folds.length);
    for (const event of folded) {
      expect(event.data).toMatchObject({ contextTokens: CONTEXT, summarized: true, fits: true });
      expect(event.data.folded).toBeGreaterThan(0);
      expect(event.data.tokensAfter).toBeLessThan(event.data.tokensBefore as number);
    }
  });

  it('is forgotten with the history on /reset: the next request starts afresh', async () => {
    const folds = new ContextFoldStore(redis, config.SANDBOT_INSTANCE);
    expect((await folds.get(conversation))?.folded).toBeGreaterThan(0);
    const inbound = new InboundQueue(
      redis,
      new ConversationStore(redis, config.SANDBOT_INSTANCE),
      config.SANDBOT_INSTANCE,
    );
    const sse = await openSse(`${stack.url}/api/conversations/long-talk/events`);
    try {
      await inbound.submit(
        webMessage('long-talk', '', { command: 'reset', user: { id: 'tester', name: 'tester' } }),
      );
      await sse.waitFor((e) => e.type === 'reply' && e.text.startsWith('Conversation reset'));
    } finally {
      sse.close();
      await inbound.close();
    }
    expect(await folds.get(conversation)).toBeUndefined();
    expect(await ask('a fresh start')).toMatch(/^answer: r+$/);
    const fresh = stack.ollama
      .chatRequests()
      .filter((r) => !isSummaryRequest(r))
      .at(-2);
    expect(fresh?.messages).toEqual([
      { role: 'system', content: defaultSystemPrompt() },
      { role: 'user', content: 'a fresh start' },
    ]);
  });
});
