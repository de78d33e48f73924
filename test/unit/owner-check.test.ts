import { describe, expect, it } from 'vitest';
import { ConversationId } from '../../src/contracts/conversation/id.js';
import type { AdapterDeps } from '../../src/gateway/chat-adapter.js';
import { conversationOwner, mayAct, ownerRefusalText } from '../../src/gateway/commands/owner-check.js';

const thread = ConversationId.parse('slack:T1:C1:1700000000.000100');
const dm = ConversationId.parse('slack:T1:D1:dm');

describe('who may act on a conversation', () => {
  it('is its owner or an admin; an unknown owner leaves admins only', () => {
    expect(mayAct('slack:U1', 'slack:U1', false)).toBe(true);
    expect(mayAct('slack:U2', 'slack:U1', false)).toBe(false);
    expect(mayAct('slack:U2', 'slack:U1', true)).toBe(true);
    expect(mayAct('slack:U2', undefined, false)).toBe(false);
    expect(mayAct('slack:U2', undefined, true)).toBe(true);
    // The same id on another platform is another person.
    expect(mayAct('discord:U1', 'slack:U1', false)).toBe(false);
  });

  it('names the owner of a channel thread, and nothing of a DM or an unknown conversation', () => {
    const reset = { verb: 'reset', shown: '`/sandbot reset`' };
    expect(ownerRefusalText(thread, 'slack:U1', reset)).toBe(
      'Only <@U1> (who started it) or an admin can use `/sandbot reset` on it.',
    );
    expect(ownerRefusalText(thread, 'slack:U1', { verb: 'done', shown: '/done' })).toBe(
      'Only <@U1> (who started it) or an admin can close this task.',
    );
    const generic =
      'Only the person who started that conversation, or an admin, can use `/sandbot reset` on it.';
    expect(ownerRefusalText(dm, 'slack:U1', reset)).toBe(generic);
    expect(ownerRefusalText(thread, undefined, reset)).toBe(generic);
  });

  it('reads the recorded owner first, then a top-level task’s owner', async () => {
    const deps = (recorded: string | undefined, task?: object) =>
      ({
        control: { owner: async () => recorded },
        tasks: { get: async () => task },
      }) as unknown as Pick<AdapterDeps, 'control' | 'tasks'>;
    const owner = { platform: 'slack', id: 'U9' };
    expect(await conversationOwner(deps('slack:U1', { owner, depth: 0 }), thread)).toBe('slack:U1');
    expect(await conversationOwner(deps(undefined, { owner, depth: 0 }), thread)).toBe('slack:U9');
    expect(await conversationOwner(deps(undefined, { owner, depth: 1 }), thread)).toBeUndefined();
    expect(await conversationOwner(deps(undefined), thread)).toBeUndefined();
  });
});
