import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { withEgressTunnel } from '../../sandbox/host/driver/tunnel-session.js';
import type { SandboxSession } from '../../sandbox/host/driver/types.js';
import { webConversationId } from '../../src/contracts/conversation/id.js';
import type { RuntimeToWorker } from '../../src/contracts/protocol/agent.js';
import { EGRESS_WINDOW_BYTES } from '../../src/contracts/protocol/egress.js';
import type { LineResult } from '../../src/contracts/protocol/lines.js';
import { initialTurnState, MAX_BAD_LINES, stepTurn } from '../../src/worker/turn/turn-machine.js';

function fakeSession() {
  const listeners = new Set<(line: LineResult<RuntimeToWorker>) => void>();
  const session: SandboxSession = {
    conversation: webConversationId('tunnel'),
    containerId: 'c1',
    send: () => undefined,
    onMessage: (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    onClose: () => () => undefined,
    close: async () => undefined,
  };
  const emit = (value: RuntimeToWorker) => {
    for (const listener of listeners) listener({ ok: true, value });
  };
  return { session, emit };
}

describe('the worker’s tunnel end and invalid frames', () => {
  it('passes each invalid frame on to the turn as a bad line, and forged acks trip the protocol-abuse wire', () => {
    const { session, emit } = fakeSession();
    const tunnelled = withEgressTunnel(session, () => new PassThrough());
    const seen: LineResult<RuntimeToWorker>[] = [];
    tunnelled.onMessage((line) => seen.push(line));
    emit({ type: 'egress_open', stream: 1 });
    emit({ type: 'egress_data', stream: 1, data: 'aGk=' });
    expect(seen).toEqual([]);
    for (let i = 0; i < 100; i++)
      emit({ type: 'egress_ack', stream: 1 + (i % 4), bytes: EGRESS_WINDOW_BYTES });
    expect(seen).toHaveLength(100);
    expect(seen[0]).toMatchObject({
      ok: false,
      error: expect.stringMatching(/^invalid egress frame: egress_ack/),
    });
    let state = initialTurnState('t1', '', { modelCalls: 5, tokens: 1000, seconds: 60 });
    const tripped: string[] = [];
    for (const line of seen) {
      const step = stepTurn(state, { type: 'line', line });
      state = step.state;
      for (const action of step.actions) if (action.type === 'tripwire') tripped.push(action.reason);
    }
    expect(state.badLines).toBe(MAX_BAD_LINES + 1);
    expect(tripped).toEqual([
      `protocol abuse: over ${MAX_BAD_LINES} malformed or foreign lines or invalid egress frames in one turn`,
    ]);
    void tunnelled.close();
  });
});
