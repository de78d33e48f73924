import { describe, expect, it } from 'vitest';
import { webConversationId } from '../../src/contracts/conversation/id.js';
import type { Turn } from '../../src/shared/queue/conversation-store.js';
import {
  interruptedCalls,
  type TurnEvent,
  takeoverNote,
  withTakeoverNote,
} from '../../src/worker/turn/takeover.js';

let n = 0;
const event = (kind: TurnEvent['kind'], turnId: string, data: Record<string, unknown>): TurnEvent => ({
  id: `e${++n}`,
  kind,
  turnId,
  data,
});

describe('a taken-over turn', () => {
  it('finds the calls that started and never finished, in that turn only', () => {
    const events = [
      event('tool.started', 't1', { name: 'bash', args: { command: 'a' } }),
      event('tool.call', 't1', { name: 'bash', args: { command: 'a' }, reported: true }),
      event('tool.started', 't1', { name: 'write_file', args: { path: 'x' } }),
      event('tool.started', 't1', { name: 'bash', args: { command: 'b' } }),
      event('tool.started', 't0', { name: 'bash', args: { command: 'old' } }),
    ];
    expect(interruptedCalls(events, 't1')).toEqual([
      { name: 'write_file', args: { path: 'x' } },
      { name: 'bash', args: { command: 'b' } },
    ]);
    // Read twice (file and queue): counted once.
    expect(interruptedCalls([...events, ...events], 't1')).toHaveLength(2);
    // Once recorded as interrupted by an earlier takeover, they are finished.
    const after = [
      ...events,
      event('tool.call', 't1', { name: 'write_file', args: {}, reported: false, interrupted: true }),
    ];
    expect(interruptedCalls(after, 't1')).toEqual([{ name: 'bash', args: { command: 'b' } }]);
  });

  it('tells the model before the user’s words, and says nothing when nothing had started', () => {
    const turn: Turn = {
      turnId: 't1',
      conversation: webConversationId('c'),
      fromSeq: 1,
      toSeq: 1,
      messages: [
        {
          id: 'm',
          conversation: webConversationId('c'),
          platform: 'web',
          user: { id: 'u' },
          text: 'go',
          receivedAt: new Date().toISOString(),
          route: {},
          files: [],
        },
      ],
    };
    expect(takeoverNote([])).toBeUndefined();
    expect(withTakeoverNote(turn, undefined)).toBe(turn);
    const note = takeoverNote([{ name: 'bash', args: { command: 'x'.repeat(1000) } }]) ?? '';
    expect(note).toMatch(/^\[sandbot: this turn was interrupted/);
    expect(note).toContain('1. bash {"command":"xxx');
    expect(note.length).toBeLessThan(700);
    expect(withTakeoverNote(turn, note).messages[0]?.text).toBe(`${note}\n\ngo`);
  });
});
