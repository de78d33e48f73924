import { describe, expect, it, vi } from 'vitest';
import type { SandboxSession } from '../../sandbox/host/driver/types.js';
import { webConversationId } from '../../src/contracts/conversation/id.js';
import type { RuntimeToWorker } from '../../src/contracts/protocol/agent.js';
import type { LineResult } from '../../src/contracts/protocol/lines.js';
import {
  awaitsCancelAnswer,
  CANCEL_GRACE_MS,
  killsSandbox,
  watchRunEnd,
} from '../../src/worker/turn/cancel-answer.js';
import type { TurnResult } from '../../src/worker/turn/turn-machine.js';

const stop: TurnResult = { kind: 'stopped', reason: { kind: 'stop', by: 'admin:ann' } };
const kill: TurnResult = { kind: 'stopped', reason: { kind: 'kill', by: 'tripwire', reason: 'x' } };
const timedOut: TurnResult = { kind: 'error', message: 'too long', timedOut: true };
const failed: TurnResult = { kind: 'error', message: 'The agent ended its turn without an answer.' };
const reply: TurnResult = { kind: 'reply', text: 'hi' };
const abandoned: TurnResult = { kind: 'abandoned' };

describe('whether a run’s sandbox is killed as wedged', () => {
  it('kills after a stop the runtime did not answer, and after a run past its wall time, answered or not', () => {
    expect(killsSandbox(stop, false)).toBe(true);
    expect(killsSandbox(stop, true)).toBe(false);
    expect(killsSandbox(timedOut, false)).toBe(true);
    expect(killsSandbox(timedOut, true)).toBe(true);
  });

  it('leaves it be otherwise: the runtime ended the run itself, a kill killed it, the worker let go', () => {
    for (const result of [kill, failed, reply, abandoned]) {
      expect(killsSandbox(result, false)).toBe(false);
      expect(awaitsCancelAnswer(result)).toBe(false);
    }
    expect(awaitsCancelAnswer(stop)).toBe(true);
    expect(awaitsCancelAnswer(timedOut)).toBe(false);
  });
});

function fakeSession() {
  const lines = new Set<(line: LineResult<RuntimeToWorker>) => void>();
  const closes = new Set<(reason: string) => void>();
  const session: SandboxSession = {
    conversation: webConversationId('w'),
    containerId: 'c',
    send: () => undefined,
    onMessage: (listener) => {
      lines.add(listener);
      return () => lines.delete(listener);
    },
    onClose: (listener) => {
      closes.add(listener);
      return () => closes.delete(listener);
    },
    close: async () => undefined,
  };
  const emit = (value: RuntimeToWorker) => {
    for (const listener of [...lines]) listener({ ok: true, value });
  };
  const end = () => {
    for (const listener of [...closes]) listener('gone');
  };
  return { session, emit, end, listening: () => lines.size + closes.size };
}

describe('watching for the runtime’s answer to a cancel', () => {
  it('is answered by the run’s turn_done, before or after the wait begins; another run’s is no answer', async () => {
    vi.useFakeTimers();
    try {
      const early = fakeSession();
      const watch = watchRunEnd(early.session, 'r1');
      early.emit({ type: 'turn_done', turnId: 'r1' });
      expect(await watch.answered(CANCEL_GRACE_MS)).toBe(true);
      expect(early.listening()).toBe(0);

      const late = fakeSession();
      const later = watchRunEnd(late.session, 'r2');
      const answer = later.answered(CANCEL_GRACE_MS);
      late.emit({ type: 'turn_done', turnId: 'other' });
      await vi.advanceTimersByTimeAsync(1000);
      late.emit({ type: 'turn_done', turnId: 'r2' });
      expect(await answer).toBe(true);
    } finally {
      vi.useRealTimers();
    }
  });

  it('is not answered by a frozen runtime within the grace; a stream that ended needs no answer', async () => {
    vi.useFakeTimers();
    try {
      const frozen = fakeSession();
      const answer = watchRunEnd(frozen.session, 'r1').answered(CANCEL_GRACE_MS);
      await vi.advanceTimersByTimeAsync(CANCEL_GRACE_MS);
      expect(await answer).toBe(false);
      expect(frozen.listening()).toBe(0);

      const gone = fakeSession();
      const closed = watchRunEnd(gone.session, 'r1').answered(CANCEL_GRACE_MS);
      gone.end();
      expect(await closed).toBe(true);
    } finally {
      vi.useRealTimers();
    }
  });
});
