import { createHash } from 'node:crypto';
import { z } from 'zod';

/**
 * A conversation is the unit of isolation (one sandbox, one history). Its id is derived from the
 * platform's own ids, so it is stable across restarts and the same on every gateway.
 *   web:<session>                       a local web chat session
 *   slack:<team>:<channel>:<threadTs>   a Slack thread (or a DM's top level: threadTs "dm")
 *   discord:<guild>:<channel>:<thread>  a Discord thread (its parent channel first, so rules can name it)
 *   discord:dm:<channel>                a Discord DM
 */
const SEGMENT = '[A-Za-z0-9._-]{1,64}';
const CONVERSATION_PATTERN = new RegExp(`^(web|slack|discord)(:${SEGMENT}){1,4}$`);

export const ConversationId = z
  .string()
  .max(256)
  .regex(CONVERSATION_PATTERN, 'a conversation id looks like "web:<session>", "slack:…" or "discord:…"')
  .brand<'ConversationId'>();
export type ConversationId = z.infer<typeof ConversationId>;

/** What a web chat client may choose as its conversation name. */
export const WebSessionName = z
  .string()
  .regex(/^[A-Za-z0-9_-]{1,64}$/, 'conversation must be 1–64 letters, digits, "-" or "_"');

export function webConversationId(session: string): ConversationId {
  return ConversationId.parse(`web:${WebSessionName.parse(session)}`);
}

export function platformOf(id: ConversationId): 'web' | 'slack' | 'discord' {
  return id.slice(0, id.indexOf(':')) as 'web' | 'slack' | 'discord';
}

/**
 * Does a rule's conversation prefix (`slack:T1:C2`, `discord:G:C`, `web:`) cover this conversation? It
 * matches whole segments, so a grant for channel `C2` never reaches channel `C23`; a trailing `*`
 * (`web:team-*`) matches any id that starts with what precedes it.
 */
export function coversConversation(prefix: string, conversation: string): boolean {
  if (prefix.endsWith('*')) return conversation.startsWith(prefix.slice(0, -1));
  if (prefix.endsWith(':')) return conversation.startsWith(prefix);
  return conversation === prefix || conversation.startsWith(`${prefix}:`);
}

/** Short stable key for names that cannot hold the raw id (container, volume, Redis keys). */
export function conversationKey(id: ConversationId): string {
  return shortHash(id);
}

/** 80 bits of sha256, hex: collision-free in practice for names and keys. */
export function shortHash(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 20);
}
