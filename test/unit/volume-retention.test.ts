import { describe, expect, it } from 'vitest';
import type { ConversationId } from '../../src/contracts/conversation/id.js';
import { expiredConversations, retentionCutoff } from '../../src/worker/sandboxes/volume-retention.js';

const DAY = 86_400_000;
const now = 1_700_000_000_000;
const c = (name: string) => `web:${name}` as ConversationId;

describe('volume retention', () => {
  it('keeps forever at 0 days, else cuts off that many days back', () => {
    expect(retentionCutoff(now, 0)).toBeUndefined();
    expect(retentionCutoff(now, 30)).toBe(now - 30 * DAY);
  });

  it('removes only conversations last used before the cutoff, oldest first, a bounded number', () => {
    const cutoff = retentionCutoff(now, 30);
    const lastUsed = [
      { conversation: c('recent'), at: now - DAY },
      { conversation: c('old'), at: now - 31 * DAY },
      { conversation: c('oldest'), at: now - 400 * DAY },
      { conversation: c('edge'), at: now - 30 * DAY },
    ];
    expect(expiredConversations(lastUsed, cutoff)).toEqual([c('oldest'), c('old')]);
    expect(expiredConversations(lastUsed, cutoff, 1)).toEqual([c('oldest')]);
    expect(expiredConversations(lastUsed, undefined)).toEqual([]);
  });
});
