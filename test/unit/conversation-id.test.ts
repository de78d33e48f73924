import { describe, expect, it } from 'vitest';
import {
  ConversationId,
  conversationKey,
  coversConversation,
  platformOf,
  webConversationId,
} from '../../src/contracts/conversation/id.js';

describe('ConversationId', () => {
  it('accepts the platform shapes', () => {
    for (const id of [
      'web:alice',
      'slack:T1:C2:1700000000.000100',
      'discord:123456789012345678:987654321098765432',
      'discord:123456789012345678:987654321098765432:987654321098765433',
    ]) {
      expect(ConversationId.safeParse(id).success).toBe(true);
    }
  });

  it('refuses unknown platforms, empty segments and path tricks', () => {
    for (const id of ['', 'web:', 'irc:chan', 'web:../etc', 'web:a/b', 'web:a b', `web:${'x'.repeat(65)}`]) {
      expect(ConversationId.safeParse(id).success, id).toBe(false);
    }
  });

  it('builds web ids from session names and rejects bad ones with a reason', () => {
    expect(webConversationId('chat-1')).toBe('web:chat-1');
    expect(() => webConversationId('no spaces')).toThrow(/letters, digits/);
  });

  it('derives a stable key and the platform', () => {
    const id = webConversationId('a');
    expect(conversationKey(id)).toBe(conversationKey(webConversationId('a')));
    expect(conversationKey(id)).not.toBe(conversationKey(webConversationId('b')));
    expect(conversationKey(id)).toMatch(/^[0-9a-f]{20}$/);
    expect(platformOf(ConversationId.parse('slack:T1:C1:1.2'))).toBe('slack');
  });

  it('lets a rule prefix cover whole segments only', () => {
    expect(coversConversation('slack:T1:C1', 'slack:T1:C1:1.2')).toBe(true);
    expect(coversConversation('slack:T1:C1', 'slack:T1:C1')).toBe(true);
    expect(coversConversation('slack:T1:C1', 'slack:T1:C12:1.2')).toBe(false);
    expect(coversConversation('web:', 'web:alice')).toBe(true);
    expect(coversConversation('web', 'web:alice')).toBe(true);
    expect(coversConversation('web', 'webby:alice')).toBe(false);
    expect(coversConversation('web:team-*', 'web:team-7')).toBe(true);
    expect(coversConversation('web:team-*', 'web:teams')).toBe(false);
  });
});
