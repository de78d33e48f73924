import { describe, expect, it } from 'vitest';
import { parseAuditInput } from '../../src/contracts/audit/events.js';
import type { ConversationId } from '../../src/contracts/conversation/id.js';
import { GENESIS_HASH, seal } from '../../src/shared/audit/chain.js';
import { formatTimeline, timelineLine } from '../../src/shared/audit/timeline.js';

const conversation = 'web:timeline' as ConversationId;

function replyEvent(text: string, files: { name: string; size: number }[] = []) {
  const parsed = parseAuditInput({
    conversation,
    turnId: `${conversation}#1-1`,
    actor: 'agent',
    kind: 'reply',
    data: { messageId: 'web:timeline#1-1:reply', chars: text.length, text, files },
  });
  if (!parsed.ok) throw new Error(parsed.error);
  const body = {
    id: '00000000-0000-4000-8000-000000000001',
    time: '2026-01-01T00:00:00.000Z',
    ...parsed.value,
  };
  return seal(body, 1, GENESIS_HASH);
}

describe('the timeline of `sandbot audit show`', () => {
  it('prints a reply’s whole text under its line: what the user read', () => {
    const event = replyEvent('Done.\nThe files:\r\n- a.txt', [{ name: 'a.txt', size: 3 }]);
    expect(formatTimeline([event])).toBe(
      [
        'conversation web:timeline, 1 events',
        '2026-01-01T00:00:00.000Z  #1  reply            agent [#1-1]  25 chars, 1 files: Done. The files: - a.txt',
        '    │ Done.',
        '    │ The files:',
        '    │ - a.txt',
        '',
      ].join('\n'),
    );
  });

  it('shows control characters in a reply instead of sending them to the terminal', () => {
    const event = replyEvent('red \u001b[31malert\u0007\tok');
    const shown = formatTimeline([event]).split('\n')[2];
    expect(shown).toBe('    │ red \\u001b[31malert\\u0007\tok');
  });

  it('refuses a reply event without its text', () => {
    const parsed = parseAuditInput({
      conversation,
      actor: 'agent',
      kind: 'reply',
      data: { messageId: 'x', chars: 3, files: [] },
    });
    expect(parsed).toEqual({
      ok: false,
      error: 'reply data: text: Invalid input: expected string, received undefined',
    });
  });

  it('keeps other events to one line', () => {
    const parsed = parseAuditInput({
      conversation,
      actor: 'worker:w-1',
      kind: 'limit.hit',
      data: { limit: 'x' },
    });
    if (!parsed.ok) throw new Error(parsed.error);
    const event = seal(
      { id: '00000000-0000-4000-8000-000000000002', time: '2026-01-01T00:00:00.000Z', ...parsed.value },
      1,
      GENESIS_HASH,
    );
    expect(formatTimeline([event])).toBe(`conversation web:timeline, 1 events\n${timelineLine(event)}\n`);
  });
});
