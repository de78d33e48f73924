import { describe, expect, it } from 'vitest';
import type { SandboxSession } from '../../sandbox/host/driver/types.js';
import { webConversationId } from '../../src/contracts/conversation/id.js';
import { createLogger } from '../../src/contracts/log/logger.js';
import type { ChatMessage, RuntimeToWorker, WorkerToRuntime } from '../../src/contracts/protocol/agent.js';
import type { LineResult } from '../../src/contracts/protocol/lines.js';
import type { OutboundEvent } from '../../src/contracts/protocol/outbound.js';
import type { Turn } from '../../src/shared/queue/conversation-store.js';
import { silentTrail } from '../../src/worker/audit/turn-trail.js';
import type { TurnRunnerDeps } from '../../src/worker/turn/turn-deps.js';
import { driveTurn } from '../../src/worker/turn/turn-drive.js';

/** A sandbox session that records what the worker sends and lets the test speak for the runtime. */
function fakeSession() {
  const sent: WorkerToRuntime[] = [];
  let listener: ((line: LineResult<RuntimeToWorker>) => void) | undefined;
  let closer: ((reason: string) => void) | undefined;
  const session: SandboxSession = {
    conversation: webConversationId('a'),
    containerId: 'c',
    send: (message) => void sent.push(message),
    onMessage: (l) => {
      listener = l;
      return () => {
        listener = undefined;
      };
    },
    onClose: (l) => {
      closer = l;
      return () => {
        closer = undefined;
      };
    },
    close: async () => undefined,
  };
  const runId = () => (sent[0] as { turnId: string }).turnId;
  const say = (value: RuntimeToWorker) => listener?.({ ok: true, value });
  return {
    session,
    sent,
    runId,
    say,
    close: (reason: string) => closer?.(reason),
    listening: () => !!listener,
  };
}

const turn = {
  turnId: 't1',
  conversation: webConversationId('a'),
  fromSeq: 1,
  toSeq: 1,
  messages: [{ user: { id: 'u' }, text: 'hi', files: [] }],
} as unknown as Turn;

function deps(chat: TurnRunnerDeps['broker']['chat']): TurnRunnerDeps {
  return {
    broker: { chat },
    publish: async () => undefined,
    logger: createLogger({ SANDBOT_LOG_LEVEL: 'silent' }),
    systemPrompt: 'be brief',
    config: {
      SANDBOT_MODEL: 'm',
      SANDBOT_FILE_MAX_BYTES: 1,
      SANDBOX_TOOL_TIMEOUT_SECONDS: 5,
      SANDBOX_TOOL_OUTPUT_BYTES: 100,
      SANDBOX_TURN_TIMEOUT_SECONDS: 60,
      SANDBOT_MAX_MODEL_CALLS_PER_TURN: 5,
      SANDBOT_MAX_TOKENS_PER_TURN: 1000,
    },
  } as unknown as TurnRunnerDeps;
}

const signals = () => ({ abandon: new AbortController().signal, stop: new AbortController().signal });
const answer = (content: string) => ({ message: { role: 'assistant' as const, content } });

describe('turn drive (the shell around the turn machine)', () => {
  it('starts the turn, relays the model answer, and replies at turn_done after the answer is in', async () => {
    const fake = fakeSession();
    let release: () => void = () => undefined;
    const asked: ChatMessage[][] = [];
    const chat: TurnRunnerDeps['broker']['chat'] = async (request) => {
      asked.push(request.messages);
      await new Promise<void>((resolve) => {
        release = resolve;
      });
      return answer('hello');
    };
    const context = { deps: deps(chat), turn, session: fake.session, trail: silentTrail, canary: '' };
    const result = driveTurn({ ...context, log: context.deps.logger }, signals());
    expect(fake.sent[0]).toMatchObject({ type: 'turn', messages: [{ user: 'u', text: 'hi' }] });
    const runId = fake.runId();
    expect(runId).toMatch(/^t1@[0-9a-f]{8}$/);
    fake.say({
      type: 'model_request',
      turnId: runId,
      requestId: 'r1',
      messages: [{ role: 'user', content: 'hi' }],
    });
    // turn_done before the answer is relayed: the turn waits for it.
    fake.say({ type: 'turn_done', turnId: runId });
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(asked).toHaveLength(1);
    release();
    expect(await result).toEqual({ kind: 'reply', text: 'hello' });
    expect(fake.sent.slice(1)).toEqual([
      {
        type: 'model_response',
        turnId: runId,
        requestId: 'r1',
        message: { role: 'assistant', content: 'hello' },
      },
    ]);
    expect(fake.listening()).toBe(false);
  });

  it('asks the model the rules choose, says when it waits for the model, and notes a fallback answer', async () => {
    const fake = fakeSession();
    const published: OutboundEvent[] = [];
    const asked: string[] = [];
    const chat: TurnRunnerDeps['broker']['chat'] = async (request) => {
      asked.push(request.model);
      request.onWait?.(2);
      return {
        ...answer('from small'),
        model: 'small',
        fallback: { chosen: request.model, reason: 'it failed', error: 'x' },
      };
    };
    const routed = deps(chat);
    routed.config = { ...routed.config, SANDBOT_MODEL_RULES: [{ prefix: 'web:a', model: 'big' }] };
    routed.publish = async (event) => void published.push(event);
    const result = driveTurn(
      { deps: routed, turn, session: fake.session, trail: silentTrail, canary: '', log: routed.logger },
      signals(),
    );
    const runId = fake.runId();
    fake.say({
      type: 'model_request',
      turnId: runId,
      requestId: 'r1',
      messages: [{ role: 'user', content: 'hi' }],
    });
    fake.say({ type: 'turn_done', turnId: runId });
    expect(await result).toEqual({
      kind: 'reply',
      text: 'from small\n\n(Answered by small: big was unavailable, it failed.)',
    });
    expect(asked).toEqual(['big']);
    expect(published).toMatchObject([
      { type: 'progress', id: 't1:progress:model-wait:1', text: 'waiting for the model (2 ahead)…' },
    ]);
  });

  it('answers model requests one at a time, in order', async () => {
    const fake = fakeSession();
    const order: string[] = [];
    const chat: TurnRunnerDeps['broker']['chat'] = async (request) => {
      const text = request.messages[0]?.content ?? '';
      order.push(`start ${text}`);
      await new Promise((resolve) => setTimeout(resolve, text === 'one' ? 20 : 0));
      order.push(`end ${text}`);
      return answer(text);
    };
    const context = { deps: deps(chat), turn, session: fake.session, trail: silentTrail, canary: '' };
    const result = driveTurn({ ...context, log: context.deps.logger }, signals());
    const runId = fake.runId();
    for (const [requestId, content] of [
      ['r1', 'one'],
      ['r2', 'two'],
    ] as const) {
      fake.say({ type: 'model_request', turnId: runId, requestId, messages: [{ role: 'user', content }] });
    }
    fake.say({ type: 'turn_done', turnId: runId });
    expect(await result).toEqual({ kind: 'reply', text: 'two' });
    expect(order).toEqual(['start one', 'end one', 'start two', 'end two']);
  });

  it('on stop: aborts the model call, cancels the runtime, and stops listening', async () => {
    const fake = fakeSession();
    let aborted = false;
    const chat: TurnRunnerDeps['broker']['chat'] = (request) =>
      new Promise((_, reject) => {
        request.signal?.addEventListener('abort', () => {
          aborted = true;
          reject(new Error('aborted'));
        });
      });
    const stop = new AbortController();
    const context = { deps: deps(chat), turn, session: fake.session, trail: silentTrail, canary: '' };
    const result = driveTurn({ ...context, log: context.deps.logger }, { ...signals(), stop: stop.signal });
    const runId = fake.runId();
    fake.say({ type: 'model_request', turnId: runId, requestId: 'r1', messages: [] });
    await new Promise((resolve) => setTimeout(resolve, 5));
    stop.abort({ kind: 'stop', by: 'ann' });
    expect(await result).toEqual({ kind: 'stopped', reason: { kind: 'stop', by: 'ann' } });
    expect(aborted).toBe(true);
    expect(fake.sent.at(-1)).toEqual({ type: 'cancel', turnId: runId });
    expect(fake.listening()).toBe(false);
  });

  it('ends at once, without starting the turn, when already abandoned', async () => {
    const fake = fakeSession();
    const abandon = new AbortController();
    abandon.abort();
    const context = { deps: deps(async () => answer('x')), turn, session: fake.session, trail: silentTrail };
    const result = await driveTurn(
      { ...context, canary: '', log: context.deps.logger },
      { ...signals(), abandon: abandon.signal },
    );
    expect(result).toEqual({ kind: 'abandoned' });
    expect(fake.sent.map((m) => m.type)).toEqual(['cancel']);
  });

  it('fails when the sandbox goes away mid-turn', async () => {
    const fake = fakeSession();
    const context = { deps: deps(async () => answer('x')), turn, session: fake.session, trail: silentTrail };
    const result = driveTurn({ ...context, canary: '', log: context.deps.logger }, signals());
    fake.close('container exited');
    expect(await result).toEqual({
      kind: 'error',
      message: 'Your sandbox stopped during the turn (container exited).',
    });
  });
});
