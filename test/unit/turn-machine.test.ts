import { describe, expect, it } from 'vitest';
import { webConversationId } from '../../src/contracts/conversation/id.js';
import type { ChatMessage, RuntimeToWorker } from '../../src/contracts/protocol/agent.js';
import type { Turn } from '../../src/shared/queue/conversation-store.js';
import { CANARY_PATH } from '../../src/worker/turn/canary.js';
import {
  initialTurnState,
  MAX_BAD_LINES,
  MAX_LINES_PER_TURN,
  outcomeOf,
  protocolAbuse,
  stepTurn,
  type TurnAction,
  type TurnEvent,
  type TurnState,
  turnStartMessage,
} from '../../src/worker/turn/turn-machine.js';

const RUN = 'web:a#1-1@abcd1234';
const budget = { modelCalls: 3, tokens: 1000, seconds: 60 };
const fresh = (canary = '') => initialTurnState(RUN, canary, budget);

/** Feeds the events in order; returns the last state and every action, in order. */
function run(state: TurnState, ...events: TurnEvent[]): { state: TurnState; actions: TurnAction[] } {
  const actions: TurnAction[] = [];
  let current = state;
  for (const event of events) {
    const next = stepTurn(current, event);
    current = next.state;
    actions.push(...next.actions);
  }
  return { state: current, actions };
}

const line = (value: RuntimeToWorker): TurnEvent => ({ type: 'line', line: { ok: true, value } });
const due = (requestId = 'r1', messages: ChatMessage[] = [{ role: 'user', content: 'hi' }]): TurnEvent => ({
  type: 'model_request_due',
  requestId,
  messages,
});
const answered = (content: string, extra: Partial<ChatMessage> = {}, tokens = 10): TurnEvent => ({
  type: 'model_answered',
  requestId: 'r1',
  answer: { message: { role: 'assistant', content, ...extra }, promptTokens: tokens, completionTokens: 0 },
});
const cancel = { type: 'send', message: { type: 'cancel', turnId: RUN } } as const;

describe('turn machine: a normal turn', () => {
  it('queues a model request, calls the model, relays the answer and replies at turn_done', () => {
    const queued = run(fresh(), line({ type: 'model_request', turnId: RUN, requestId: 'r1', messages: [] }));
    expect(queued.actions).toEqual([{ type: 'queue_model_request', requestId: 'r1', messages: [] }]);
    const called = run(queued.state, due());
    expect(called.actions).toEqual([
      { type: 'call_model', requestId: 'r1', messages: [{ role: 'user', content: 'hi' }] },
    ]);
    expect(called.state.modelCalls).toBe(1);
    const relayed = run(called.state, answered('  hello  '));
    const message = { role: 'assistant', content: '  hello  ' };
    expect(relayed.actions).toEqual([
      { type: 'note_host_calls', message },
      { type: 'send', message: { type: 'model_response', turnId: RUN, requestId: 'r1', message } },
    ]);
    expect(relayed.state.tokens).toBe(10);
    const done = run(relayed.state, line({ type: 'turn_done', turnId: RUN }));
    expect(done.actions).toEqual([{ type: 'settle_model_requests' }]);
    const ended = run(done.state, { type: 'model_requests_settled' });
    // A reply leaves the runtime be: no cancel.
    expect(ended.actions).toEqual([
      { type: 'end' },
      { type: 'resolve', result: { kind: 'reply', text: 'hello' } },
    ]);
    expect(ended.state.result).toEqual({ kind: 'reply', text: 'hello' });
  });

  it('numbers tool steps for progress, relays host tool requests, records finished tools, logs runtime errors', () => {
    const started = {
      type: 'tool_started',
      turnId: RUN,
      callId: 'c',
      name: 'bash',
      args: { command: 'ls  -la' },
    };
    const finished = {
      type: 'tool_finished',
      turnId: RUN,
      callId: 'c',
      name: 'bash',
      ok: true,
      output: '',
      truncated: false,
    } as const;
    const host = {
      type: 'host_tool_request',
      turnId: RUN,
      requestId: 'h',
      name: 'delegate',
      args: {},
    } as const;
    const { state, actions } = run(
      fresh(),
      line(started as RuntimeToWorker),
      line(started as RuntimeToWorker),
      line(finished),
      line(host),
      line({ type: 'error', turnId: RUN, message: 'x'.repeat(400) }),
      line({ type: 'progress', turnId: RUN, text: 'ignored' }),
    );
    expect(actions).toEqual([
      { type: 'progress', step: 'tool:1', text: 'bash: ls -la' },
      { type: 'progress', step: 'tool:2', text: 'bash: ls -la' },
      { type: 'record_tool_finished', result: finished },
      { type: 'relay_host_tool', request: host },
      { type: 'log_runtime_error', message: 'x'.repeat(300) },
    ]);
    expect(state.toolSteps).toBe(2);
    expect(state.lines).toBe(6);
    expect(state.badLines).toBe(0);
  });

  it('builds the start message, with skill tools only when there are some', () => {
    const turn = {
      turnId: 't',
      conversation: webConversationId('a'),
      fromSeq: 1,
      toSeq: 2,
      messages: [
        { user: { id: 'u1', name: 'Ann' }, text: 'a' },
        { user: { id: 'u2' }, text: 'b' },
      ],
    } as unknown as Turn;
    const limits = { toolTimeoutMs: 1000, toolOutputBytes: 100 };
    expect(turnStartMessage(RUN, turn, limits)).toEqual({
      type: 'turn',
      turnId: RUN,
      messages: [
        { user: 'Ann', text: 'a' },
        { user: 'u2', text: 'b' },
      ],
      limits,
    });
    expect(turnStartMessage(RUN, turn, limits, [])).not.toHaveProperty('tools');
    const tool = { name: 'x', description: 'd', inputSchema: { type: 'object' } } as never;
    expect(turnStartMessage(RUN, turn, limits, [tool])).toMatchObject({ tools: [tool] });
  });
});

describe('turn machine: outcomes at turn_done', () => {
  it('fails without an answer, on an empty answer, or on an answer that still calls tools', () => {
    const none = 'The agent ended its turn without an answer.';
    expect(outcomeOf(fresh())).toEqual({ kind: 'error', message: none });
    const blank = run(fresh(), due(), answered('   ')).state;
    expect(outcomeOf(blank)).toEqual({ kind: 'error', message: none });
    const calls = [{ function: { name: 'bash', arguments: { command: 'ls' } } }];
    const tooling = run(fresh(), due(), answered('doing', { tool_calls: calls })).state;
    expect(outcomeOf(tooling)).toEqual({ kind: 'error', message: none });
  });

  it("fails with the model's error, even after an answer", () => {
    const { state, actions } = run(fresh(), due(), answered('hi'), due('r2'), {
      type: 'model_failed',
      requestId: 'r2',
      error: 'model down',
      cancelled: false,
    });
    expect(actions.at(-1)).toEqual({
      type: 'send',
      message: { type: 'model_error', turnId: RUN, requestId: 'r2', message: 'model down' },
    });
    expect(outcomeOf(state)).toEqual({ kind: 'error', message: 'model down' });
  });

  it('ignores a model call that failed because the turn ended', () => {
    const before = run(fresh(), due()).state;
    const after = run(before, { type: 'model_failed', requestId: 'r1', error: 'aborted', cancelled: true });
    expect(after.actions).toEqual([]);
    expect(after.state).toBe(before);
  });
});

describe('turn machine: budgets', () => {
  it('refuses the model call over the limit of calls, and the turn fails with it', () => {
    const spent = run(fresh(), due(), answered('a'), due(), answered('b'), due(), answered('c'));
    expect(spent.state.modelCalls).toBe(3);
    const refused = run(spent.state, due('r4'));
    const failure = 'The agent reached its limit of 3 model calls for one turn.';
    expect(refused.actions).toEqual([
      { type: 'limit_hit', limit: 'model_calls_per_turn', detail: { max: 3 } },
      { type: 'send', message: { type: 'model_error', turnId: RUN, requestId: 'r4', message: failure } },
    ]);
    expect(refused.state.modelCalls).toBe(3);
    expect(outcomeOf(refused.state)).toEqual({ kind: 'error', message: failure });
  });

  it('counts the retries the broker made after an unreadable tool call against the limit of calls', () => {
    const retried: TurnEvent = {
      type: 'model_answered',
      requestId: 'r1',
      answer: { message: { role: 'assistant', content: 'a' }, modelCalls: 3 },
    };
    const spent = run(fresh(), due(), retried);
    expect(spent.state.modelCalls).toBe(3);
    expect(run(spent.state, due('r2')).actions[0]).toEqual({
      type: 'limit_hit',
      limit: 'model_calls_per_turn',
      detail: { max: 3 },
    });
  });

  it('refuses the model call once the tokens are spent, naming what was used', () => {
    const spent = run(fresh(), due(), answered('a', {}, 1200)).state;
    const refused = run(spent, due('r2'));
    const failure = 'The agent used its budget of 1000 model tokens for one turn.';
    expect(refused.actions).toEqual([
      { type: 'limit_hit', limit: 'tokens_per_turn', detail: { max: 1000, used: 1200 } },
      { type: 'send', message: { type: 'model_error', turnId: RUN, requestId: 'r2', message: failure } },
    ]);
    expect(outcomeOf(refused.state)).toEqual({ kind: 'error', message: failure });
  });

  it('counts prompt and completion tokens, and answers without counts as none', () => {
    const answer = {
      message: { role: 'assistant' as const, content: 'x' },
      promptTokens: 7,
      completionTokens: 5,
    };
    const counted = run(fresh(), due(), { type: 'model_answered', requestId: 'r1', answer });
    expect(counted.state.tokens).toBe(12);
    const bare = run(counted.state, due(), {
      type: 'model_answered',
      requestId: 'r1',
      answer: { message: { role: 'assistant', content: 'y' } },
    });
    expect(bare.state.tokens).toBe(12);
  });

  it('times out: the limit is recorded and the turn fails and is cancelled', () => {
    const { state, actions } = run(fresh(), { type: 'timed_out' });
    const result = {
      kind: 'error',
      message: 'The turn took longer than 60 s and was stopped.',
      timedOut: true,
    };
    expect(actions).toEqual([
      { type: 'limit_hit', limit: 'turn_timeout', detail: { seconds: 60 } },
      { type: 'end' },
      cancel,
      { type: 'resolve', result },
    ]);
    expect(state.result).toEqual(result);
  });
});

describe('turn machine: tripwires', () => {
  const token = 'AKIA0123456789ABCDEF';

  it('fires when a model request carries the canary, and does not call the model', () => {
    const messages: ChatMessage[] = [{ role: 'tool', content: `aws_access_key_id = ${token}` }];
    const { state, actions } = run(fresh(token), due('r1', messages));
    expect(actions).toEqual([{ type: 'tripwire', reason: 'the agent read the canary credentials file' }]);
    expect(state.modelCalls).toBe(0);
  });

  it('fires on the canary in an encoded form too', () => {
    const messages: ChatMessage[] = [{ role: 'tool', content: Buffer.from(token).toString('base64') }];
    expect(run(fresh(token), due('r1', messages)).actions[0]).toMatchObject({ type: 'tripwire' });
  });

  it('does not look for a canary when the conversation has none', () => {
    const messages: ChatMessage[] = [{ role: 'tool', content: '' }];
    expect(run(fresh(''), due('r1', messages)).actions[0]).toMatchObject({ type: 'call_model' });
  });

  it('fires when the model goes for the canary file, and the answer is not relayed', () => {
    const calls = [{ function: { name: 'bash', arguments: { command: `cat ~/${CANARY_PATH}` } } }];
    const { state, actions } = run(fresh(token), due(), answered('', { tool_calls: calls }, 40));
    expect(actions.slice(1)).toEqual([
      { type: 'tripwire', reason: 'the agent went for the canary credentials file' },
    ]);
    expect(state.lastAnswer).toBeUndefined();
    expect(state.tokens).toBe(40);
  });

  it('kills on too many malformed or foreign lines, warning about the first 20 only', () => {
    const bad: TurnEvent = { type: 'line', line: { ok: false, error: 'not json' } };
    const foreign = line({ type: 'turn_done', turnId: 'someone-else' });
    const events = Array.from({ length: MAX_BAD_LINES + 1 }, (_, i) => (i % 2 ? foreign : bad));
    const { state, actions } = run(fresh(), ...events);
    const warnings = actions.filter((a) => a.type === 'warn_unexpected_line');
    expect(warnings).toHaveLength(20);
    expect(warnings[0]).toEqual({ type: 'warn_unexpected_line', error: 'not json' });
    expect(warnings[1]).toEqual({ type: 'warn_unexpected_line', error: 'not for this turn' });
    const reason = `protocol abuse: over ${MAX_BAD_LINES} malformed or foreign lines or invalid egress frames in one turn`;
    expect(actions.slice(-4)).toEqual([
      { type: 'tripwire', reason },
      { type: 'end' },
      cancel,
      { type: 'resolve', result: { kind: 'stopped', reason: { kind: 'kill', by: 'tripwire', reason } } },
    ]);
    expect(state.badLines).toBe(MAX_BAD_LINES + 1);
  });

  it('counts lines written between turns as foreign, and kills when they are too many', () => {
    const few = run(fresh(), { type: 'stray_lines', lines: 3 });
    expect(few.state.badLines).toBe(3);
    expect(few.actions).toEqual([]);
    const { state, actions } = run(few.state, { type: 'stray_lines', lines: MAX_BAD_LINES });
    const reason = `protocol abuse: over ${MAX_BAD_LINES} malformed or foreign lines or invalid egress frames in one turn (${MAX_BAD_LINES} written between turns)`;
    expect(actions).toEqual([
      { type: 'tripwire', reason },
      { type: 'end' },
      cancel,
      { type: 'resolve', result: { kind: 'stopped', reason: { kind: 'kill', by: 'tripwire', reason } } },
    ]);
    expect(state.result).toBeDefined();
    expect(run(state, { type: 'stray_lines', lines: 1 }).actions).toEqual([]);
  });

  it('counts lines without a turn id (ready, egress) as foreign', () => {
    const { state } = run(fresh(), line({ type: 'ready', version: '1' }));
    expect(state.badLines).toBe(1);
  });

  it('kills on too many lines in one turn, even well-formed ones', () => {
    expect(protocolAbuse(MAX_LINES_PER_TURN, 0)).toBeUndefined();
    expect(protocolAbuse(MAX_LINES_PER_TURN + 1, 0)).toBe(
      `protocol abuse: over ${MAX_LINES_PER_TURN} lines in one turn`,
    );
    expect(protocolAbuse(0, MAX_BAD_LINES)).toBeUndefined();
    const busy = { ...fresh(), lines: MAX_LINES_PER_TURN };
    const { actions } = run(busy, line({ type: 'progress', turnId: RUN, text: 'x' }));
    expect(actions[0]).toEqual({
      type: 'tripwire',
      reason: `protocol abuse: over ${MAX_LINES_PER_TURN} lines in one turn`,
    });
  });
});

describe('turn machine: ending from outside', () => {
  it('stops with the reason given, cancelling the runtime', () => {
    const reason = { kind: 'stop', by: 'ann' } as const;
    const { state, actions } = run(fresh(), { type: 'stopped', reason });
    expect(actions).toEqual([
      { type: 'end' },
      cancel,
      { type: 'resolve', result: { kind: 'stopped', reason } },
    ]);
    expect(state.result).toEqual({ kind: 'stopped', reason });
  });

  it('is abandoned when the lease is lost', () => {
    expect(run(fresh(), { type: 'abandoned' }).actions.at(-1)).toEqual({
      type: 'resolve',
      result: { kind: 'abandoned' },
    });
  });

  it('fails when the sandbox closes', () => {
    expect(run(fresh(), { type: 'sandbox_closed', reason: 'exited' }).state.result).toEqual({
      kind: 'error',
      message: 'Your sandbox stopped during the turn (exited).',
    });
  });

  it('ends once: whatever comes after the end does nothing', () => {
    const ended = run(fresh(), { type: 'abandoned' }).state;
    for (const event of [
      { type: 'timed_out' },
      { type: 'stopped', reason: { kind: 'stop', by: '' } },
      { type: 'sandbox_closed', reason: 'x' },
      { type: 'model_requests_settled' },
      line({ type: 'turn_done', turnId: RUN }),
    ] satisfies TurnEvent[]) {
      const next = stepTurn(ended, event);
      expect(next.actions).toEqual([]);
      expect(next.state.result).toEqual({ kind: 'abandoned' });
    }
  });
});
