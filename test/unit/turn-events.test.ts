import { describe, expect, it } from 'vitest';
import { webConversationId } from '../../src/contracts/conversation/id.js';
import type { Turn } from '../../src/shared/queue/conversation-store.js';
import {
  describeToolStep,
  errorEvent,
  progressEvent,
  replyEvent,
} from '../../src/worker/turn/turn-events.js';

const turn: Turn = {
  turnId: 'web:a#3-4',
  conversation: webConversationId('a'),
  fromSeq: 3,
  toSeq: 4,
  messages: [
    {
      id: 'm1',
      conversation: webConversationId('a'),
      platform: 'web',
      user: { id: 'u' },
      text: 'hi',
      receivedAt: new Date(0).toISOString(),
      route: { channel: 'c' },
      files: [],
    },
  ],
};

describe('turn events', () => {
  it('derive ids from the turn so a rerun emits the same ids', () => {
    expect(replyEvent(turn, 'x').id).toBe(replyEvent(turn, 'y').id);
    expect(replyEvent(turn, 'x').id).not.toBe(errorEvent(turn, 'x').id);
    expect(progressEvent(turn, 'tool:1', 'a').id).not.toBe(progressEvent(turn, 'tool:2', 'a').id);
    expect(replyEvent(turn, 'x')).toMatchObject({
      platform: 'web',
      route: { channel: 'c' },
      turnId: turn.turnId,
    });
  });

  it('describes tool steps on one short line', () => {
    expect(describeToolStep('bash', { command: 'ls   -la\n/tmp' })).toBe('bash: ls -la /tmp');
    expect(describeToolStep('read_file', { path: 'a.txt' })).toBe('read_file: a.txt');
    expect(describeToolStep('list_files', {})).toBe('list_files');
    expect(describeToolStep('bash', { command: 'x'.repeat(500) }, 20)).toHaveLength(20);
  });
});
