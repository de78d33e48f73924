import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { ChatMessage } from '../../src/contracts/protocol/agent.js';
import {
  fitMessages,
  foldTarget,
  messagesTokens,
  planTokens,
  summaryAllowance,
  toolGroups,
} from '../../src/worker/broker/context-fit.js';
import {
  applyFold,
  type ContextFold,
  extendFold,
  foldMessage,
  messageHash,
  transcript,
} from '../../src/worker/broker/context-fold.js';
import { contextWindow, reportedContextLength } from '../../src/worker/broker/context-size.js';

// ── Histories as the sandbox sends them ────────────────────────────────────────────────────────────

// Lengths drawn outright: fast-check's small default size would keep every history short enough to fit.
const text = fc
  .tuple(fc.integer({ min: 0, max: 900 }), fc.string({ maxLength: 8 }))
  .map(([length, tag]) => `${tag}${'x'.repeat(length)}`);
const user = text.map((content): ChatMessage => ({ role: 'user', content }));
const answer = text.map((content): ChatMessage => ({ role: 'assistant', content }));
/** An assistant message calling tools, and a result per call. */
const toolStep = fc
  .array(fc.tuple(fc.constantFrom('bash', 'read_file'), text), { minLength: 1, maxLength: 3 })
  .map((calls): ChatMessage[] => [
    {
      role: 'assistant',
      content: '',
      tool_calls: calls.map(([name]) => ({ function: { name, arguments: { command: 'ls' } } })),
    },
    ...calls.map(([name, output]): ChatMessage => ({ role: 'tool', tool_name: name, content: output })),
  ]);
const history = fc
  .array(
    fc.oneof(
      user.map((m) => [m]),
      answer.map((m) => [m]),
      toolStep,
    ),
    { minLength: 1, maxLength: 40 },
  )
  .map((parts) => parts.flat());
const budgets = fc.integer({ min: 100, max: 8000 });
const fixed = fc.integer({ min: 0, max: 1500 });

function lastUser(messages: readonly ChatMessage[]): ChatMessage | undefined {
  return [...messages].reverse().find((m) => m.role === 'user');
}

/** Where groups start: a fold may only end there. */
function groupStarts(messages: readonly ChatMessage[]): Set<number> {
  const starts = new Set<number>();
  let at = 0;
  for (const group of toolGroups(messages)) {
    starts.add(at);
    at += group.length;
  }
  return starts;
}

describe('fitting a request into the context window', () => {
  it('keeps the task and the newest step, splits no tool call from its results, keeps order, fits', () => {
    fc.assert(
      fc.property(history, fixed, budgets, (messages, fixedTokens, budgetTokens) => {
        const input = { messages, fixedTokens, budgetTokens };
        const plan = fitMessages(input);
        const task = lastUser(messages);
        // The latest user message and the newest message are always sent.
        if (task) expect(plan.kept).toContain(task);
        expect(plan.kept.at(-1)).toBe(messages.at(-1));
        // What is folded is a start of the history, ending between groups; the rest follows in order.
        const cut = plan.folded.length;
        expect(plan.folded).toEqual(messages.slice(0, cut));
        if (cut > 0) expect(groupStarts(messages).has(cut)).toBe(true);
        const rest = messages.slice(cut);
        expect(plan.kept).toEqual(task && !rest.includes(task) ? [task, ...rest] : rest);
        // No tool result is sent without its call: the kept part starts outside any group.
        const firstOfRest = rest[0];
        if (firstOfRest?.role === 'tool') expect(groupStarts(messages).has(cut)).toBe(true);
        // Fitting, when said to, is true; and nothing is folded when all of it fits.
        if (plan.fits) expect(planTokens(input, plan)).toBeLessThanOrEqual(budgetTokens);
        if (fixedTokens + messagesTokens(messages) <= budgetTokens) expect(plan.folded).toEqual([]);
      }),
      { numRuns: 400 },
    );
  });

  it('folds no more than it must: with one group fewer, the rest would be over the fold target', () => {
    fc.assert(
      fc.property(history, fixed, budgets, (messages, fixedTokens, budgetTokens) => {
        const input = { messages, fixedTokens, budgetTokens };
        const plan = fitMessages(input);
        if (plan.folded.length === 0) return;
        const starts = [...groupStarts(messages)].sort((a, b) => a - b);
        const previous = starts.filter((s) => s < plan.folded.length).at(-1) ?? 0;
        const task = lastUser(messages);
        const rest = messages.slice(previous);
        const fewer = {
          folded: messages.slice(0, previous),
          kept: task && !rest.includes(task) ? [task, ...rest] : rest,
        };
        expect(messagesTokens(fewer.kept)).toBeGreaterThan(foldTarget(input));
      }),
      { numRuns: 400 },
    );
  });

  it('folds everything it may when even that does not fit', () => {
    fc.assert(
      fc.property(history, fixed, budgets, (messages, fixedTokens, budgetTokens) => {
        const plan = fitMessages({ messages, fixedTokens, budgetTokens });
        if (plan.fits) return;
        const groups = toolGroups(messages);
        const newest = groups.at(-1) ?? [];
        const task = lastUser(messages);
        const minimal = task && !newest.includes(task) ? [task, ...newest] : newest;
        expect(plan.kept).toEqual(minimal);
      }),
      { numRuns: 300 },
    );
  });
});

// ── The fold kept between requests ─────────────────────────────────────────────────────────────────

const say = (role: 'user' | 'assistant', content: string): ChatMessage => ({ role, content });

describe('a conversation’s fold', () => {
  const old = [say('user', 'a'), say('assistant', 'b'), say('user', 'c'), say('assistant', 'd')];
  const fold: ContextFold = {
    summary: 'S',
    folded: 4,
    omitted: 0,
    hashes: old.map(messageHash),
  };

  it('stands in for the folded messages at the start of a request, wherever the request starts', () => {
    const now = [say('user', 'e'), say('assistant', 'f'), say('user', 'g')];
    for (const from of [0, 1, 2, 3]) {
      const applied = applyFold([...old.slice(from), ...now], fold);
      expect(applied.applied).toBe(4 - from);
      expect(applied.messages).toEqual([foldMessage(fold), ...now]);
    }
  });

  it('leaves a request alone that does not start inside the folded part', () => {
    const other = [say('assistant', 'x'), say('user', 'c'), say('assistant', 'd'), say('user', 'g')];
    expect(applyFold(other, fold)).toEqual({ messages: other, applied: 0 });
    expect(applyFold([say('user', 'g')], fold).applied).toBe(0);
    expect(applyFold(old, undefined).applied).toBe(0);
  });

  it('still sends the latest user message when it is folded (a long turn), right after the summary', () => {
    const turn = [say('user', 'task'), say('assistant', 'step 1'), say('assistant', 'step 2')];
    const covering: ContextFold = { ...fold, hashes: turn.slice(0, 2).map(messageHash) };
    const applied = applyFold([...turn, say('assistant', 'step 3')], covering);
    expect(applied.applied).toBe(2);
    expect(applied.messages).toEqual([
      foldMessage(covering),
      say('user', 'task'),
      say('assistant', 'step 2'),
      say('assistant', 'step 3'),
    ]);
  });

  it('grows by what is newly folded, contiguously, so the next request still matches', () => {
    const now = [say('user', 'e'), say('assistant', 'f'), say('user', 'g')];
    const applied = applyFold([...old.slice(2), ...now], fold);
    const plan = { folded: applied.messages.slice(0, 3), kept: applied.messages.slice(3) };
    const next = extendFold(fold, applied, plan.folded, 'S2');
    expect(next).toEqual({
      summary: 'S2',
      folded: 6,
      omitted: 0,
      hashes: [...old, say('user', 'e'), say('assistant', 'f')].map(messageHash),
    });
    const later = applyFold([say('assistant', 'f'), say('user', 'g'), say('assistant', 'h')], next);
    expect(later.messages).toEqual([foldMessage(next), say('user', 'g'), say('assistant', 'h')]);
  });

  it('in a long turn, folds earlier steps again without counting the task twice', () => {
    const call = (n: number): ChatMessage => ({
      role: 'assistant',
      content: '',
      tool_calls: [{ function: { name: 'bash', arguments: { command: `step ${n}` } } }],
    });
    const result = (n: number): ChatMessage => ({ role: 'tool', tool_name: 'bash', content: `out ${n}` });
    const turn = [say('user', 'task'), call(1), result(1), call(2), result(2), call(3), result(3)];
    const first: ContextFold = {
      summary: 'S',
      folded: 3,
      omitted: 0,
      hashes: turn.slice(0, 3).map(messageHash),
    };
    const applied = applyFold(turn, first);
    expect(applied.messages).toEqual([foldMessage(first), say('user', 'task'), ...turn.slice(3)]);
    // The plan folds the summary, the task (kept too) and step 2.
    const folded = applied.messages.slice(0, 4);
    const next = extendFold(first, applied, folded, 'S2');
    expect(next.hashes).toEqual(turn.slice(0, 5).map(messageHash));
    expect(next.folded).toBe(5);
    const later = applyFold([...turn, call(4), result(4)], next);
    expect(later.messages).toEqual([
      foldMessage(next),
      say('user', 'task'),
      call(3),
      result(3),
      call(4),
      result(4),
    ]);
  });

  it('without a summary, leaves the folded messages out with a marker and keeps the earlier summary', () => {
    const applied = applyFold([...old, say('user', 'e'), say('user', 'g')], fold);
    const next = extendFold(fold, applied, applied.messages.slice(0, 2), undefined);
    expect(next).toMatchObject({ summary: 'S', folded: 5, omitted: 1 });
    expect(foldMessage(next).content).toContain('[earlier conversation omitted: 1 messages]');
    expect(foldMessage(next).role).toBe('user');
    // A fresh fold (the old one not applied) starts over.
    const fresh = extendFold(fold, { messages: [], applied: 0 }, [say('user', 'z')], undefined);
    expect(fresh).toEqual({ folded: 1, omitted: 1, hashes: [messageHash(say('user', 'z'))] });
  });

  it('writes a transcript within its length', () => {
    const long = Array.from({ length: 50 }, (_, i) => say(i % 2 ? 'assistant' : 'user', 'x'.repeat(5000)));
    expect(transcript(long, 4000).length).toBeLessThanOrEqual(4000);
    expect(transcript([say('user', 'hi')], 4000)).toBe('User: hi');
  });

  it('a long conversation, request after request, stays within the budget and keeps its fold', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(text, text), { minLength: 5, maxLength: 30 }), (turns) => {
        const budgetTokens = 1500;
        const all: ChatMessage[] = [];
        let fold: ContextFold | undefined;
        let summaries = 0;
        for (const [question, reply] of turns) {
          all.push(say('user', question));
          // The sandbox sends its newest 40 messages at most (it bounds requests itself too).
          const applied = applyFold(all.slice(-40), fold);
          const input = { messages: applied.messages, fixedTokens: 300, budgetTokens };
          const plan = fitMessages(input);
          let sent = applied.messages;
          if (plan.folded.length > 0) {
            summaries += 1;
            fold = extendFold(fold, applied, plan.folded, `summary ${summaries}`);
            sent = [foldMessage(fold), ...plan.kept];
          }
          expect(sent.at(-1)).toEqual(say('user', question));
          if (plan.fits) expect(300 + messagesTokens(sent)).toBeLessThanOrEqual(budgetTokens);
          all.push(say('assistant', reply));
        }
        // A fold holds for later requests: never more summaries than requests.
        expect(summaries).toBeLessThanOrEqual(turns.length);
        expect(summaryAllowance(budgetTokens)).toBeGreaterThan(0);
      }),
      { numRuns: 100 },
    );
  });
});

describe('a conversation with tool steps, request after request', () => {
  const turns = fc.array(fc.tuple(user, fc.array(toolStep, { maxLength: 3 }), answer), {
    minLength: 1,
    maxLength: 12,
  });

  it('sends what fits, keeps its fold consistent with what was sent, and loses no message uncounted', () => {
    fc.assert(
      fc.property(turns, fc.integer({ min: 600, max: 3000 }), (conversation, budgetTokens) => {
        const all: ChatMessage[] = [];
        let fold: ContextFold | undefined;
        const request = () => {
          const applied = applyFold(all, fold);
          const plan = fitMessages({ messages: applied.messages, fixedTokens: 200, budgetTokens });
          let sent = applied.messages;
          if (plan.folded.length > 0) {
            fold = extendFold(fold, applied, plan.folded, 'summary');
            sent = [foldMessage(fold), ...plan.kept];
            // The same history asked again gets exactly what was sent: the fold holds.
            const again = applyFold(all, fold);
            expect(again.messages).toEqual(sent);
            // Every folded message is one the history has, counted once.
            expect(again.applied).toBe(fold.folded);
          }
          expect(sent.at(-1)).toBe(all.at(-1));
          expect(sent).toContain(lastUser(all));
          // No tool result without its call before it.
          expect(toolGroups(sent).every((group) => group[0]?.role !== 'tool')).toBe(true);
        };
        for (const [question, steps, reply] of conversation) {
          all.push(question);
          request();
          for (const step of steps) {
            all.push(...step);
            request();
          }
          all.push(reply);
        }
      }),
      { numRuns: 200 },
    );
  });
});

describe('a conversation growing turn by turn', () => {
  it('is folded now and then, not at every request: a fold leaves room to grow', () => {
    const all: ChatMessage[] = [];
    let fold: ContextFold | undefined;
    let summaries = 0;
    for (let i = 0; i < 40; i++) {
      all.push(say('user', `question ${i} ${'q'.repeat(200)}`));
      const applied = applyFold(all, fold);
      const plan = fitMessages({ messages: applied.messages, fixedTokens: 300, budgetTokens: 1500 });
      expect(plan.fits).toBe(true);
      if (plan.folded.length > 0) {
        summaries += 1;
        fold = extendFold(fold, applied, plan.folded, `summary ${summaries}`);
      }
      all.push(say('assistant', `answer ${i} ${'a'.repeat(300)}`));
    }
    expect(summaries).toBeGreaterThan(3);
    expect(summaries).toBeLessThan(12); // folding just enough each time: 17
  });
});

describe('a model’s context size', () => {
  it('is the smaller of the reported length and a Modelfile num_ctx, capped by the setting', () => {
    const show = (info: Record<string, unknown>, parameters?: string) => ({
      model_info: { 'general.architecture': 'qwen2', ...info },
      ...(parameters === undefined ? {} : { parameters }),
    });
    expect(reportedContextLength(show({ 'qwen2.context_length': 32768 }))).toBe(32768);
    expect(
      reportedContextLength(show({ 'qwen2.context_length': 32768 }, 'stop "<|im_end|>"\nnum_ctx 4096')),
    ).toBe(4096);
    expect(reportedContextLength(show({}))).toBeUndefined();
    expect(reportedContextLength(show({ 'llama.context_length': 8192 }))).toBeUndefined();
    expect(reportedContextLength(show({ 'qwen2.context_length': 'lots' }))).toBeUndefined();
    expect(reportedContextLength('not an answer')).toBeUndefined();
    expect(contextWindow(32768, 8192)).toBe(8192);
    expect(contextWindow(2048, 8192)).toBe(2048);
    expect(contextWindow(undefined, 8192)).toBe(8192);
  });
});
