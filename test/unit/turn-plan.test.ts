import { describe, expect, it } from 'vitest';
import { webConversationId } from '../../src/contracts/conversation/id.js';
import type { InboundMessage } from '../../src/contracts/protocol/inbound.js';
import type { Turn } from '../../src/shared/queue/conversation-store.js';
import { planSegments } from '../../src/worker/turn/turn-plan.js';

const conversation = webConversationId('plan');
const msg = (text: string, command?: 'reset' | 'run'): InboundMessage => ({
  id: text,
  conversation,
  platform: 'web',
  user: { id: 'u' },
  text,
  receivedAt: new Date(0).toISOString(),
  route: {},
  files: [],
  ...(command ? { command } : {}),
});
const turn = (messages: InboundMessage[]): Turn => ({
  turnId: 'T',
  conversation,
  fromSeq: 1,
  toSeq: 9,
  messages,
});

describe('planSegments', () => {
  it('keeps a plain batch as one turn with the batch’s id', () => {
    const plan = planSegments(turn([msg('a'), msg('b')]));
    expect(plan).toHaveLength(1);
    expect(plan[0]).toMatchObject({ kind: 'chat', turn: { turnId: 'T' } });
    expect(plan[0]?.turn.messages.map((m) => m.text)).toEqual(['a', 'b']);
  });

  it('runs commands in order between chat turns, each with its own stable id', () => {
    const plan = planSegments(turn([msg('a'), msg('ls', 'run'), msg('', 'reset'), msg('b'), msg('c')]));
    expect(plan.map((s) => s.kind)).toEqual(['chat', 'run', 'reset', 'chat']);
    expect(plan.map((s) => s.turn.turnId)).toEqual(['T', 'T.1', 'T.2', 'T.3']);
    expect(plan[1]).toMatchObject({ kind: 'run', command: 'ls' });
    expect(plan[3]?.turn.messages.map((m) => m.text)).toEqual(['b', 'c']);
    expect(planSegments(turn([msg('a'), msg('ls', 'run'), msg('', 'reset'), msg('b'), msg('c')]))).toEqual(
      plan,
    );
  });
});
