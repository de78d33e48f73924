import { createHmac, timingSafeEqual } from 'node:crypto';
import { ConversationId } from '../../contracts/conversation/id.js';
import type { Grant } from '../../contracts/policy/network-policy.js';
import { SkillName } from '../../contracts/policy/skill-ref.js';

/**
 * Proxy credentials, pure. A sandbox's own credential names its conversation; a skill's names the
 * conversation and the skill (`web:alice~weather`, `~` being in neither a conversation id nor a skill
 * name). Either way the password is an HMAC of that user name under the worker's in-memory key, so
 * nobody without the key can mint one for another conversation or another skill.
 */

export const SKILL_SEPARATOR = '~';

/** Who a request through the proxy comes from: a conversation's sandbox, or one skill's tools in it. */
export interface ProxyIdentity {
  conversation: ConversationId;
  skill?: string;
}

export function credentialUser(identity: ProxyIdentity): string {
  return identity.skill
    ? `${identity.conversation}${SKILL_SEPARATOR}${identity.skill}`
    : identity.conversation;
}

function mac(secret: Buffer, user: string): string {
  return createHmac('sha256', secret).update(user).digest('hex');
}

/** The `user:password` of a proxy URL (the user name URL-encoded). */
export function mintCredentials(secret: Buffer, identity: ProxyIdentity): string {
  const user = credentialUser(identity);
  return `${encodeURIComponent(user)}:${mac(secret, user)}`;
}

/** The identity a `Proxy-Authorization: Basic …` header proves; forged or missing ones prove none. */
export function identifyCredentials(secret: Buffer, header: string | undefined): ProxyIdentity | undefined {
  const match = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(header ?? '');
  if (!match?.[1]) return undefined;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  // Clients send the user name decoded ("web:alice"); the MAC after the last colon has none.
  const colon = decoded.lastIndexOf(':');
  if (colon < 0) return undefined;
  const identity = parseUser(safeDecode(decoded.slice(0, colon)));
  if (!identity) return undefined;
  const expected = Buffer.from(mac(secret, credentialUser(identity)));
  const given = Buffer.from(decoded.slice(colon + 1));
  return expected.length === given.length && timingSafeEqual(expected, given) ? identity : undefined;
}

function parseUser(user: string): ProxyIdentity | undefined {
  const cut = user.lastIndexOf(SKILL_SEPARATOR);
  const conversation = ConversationId.safeParse(cut < 0 ? user : user.slice(0, cut));
  if (!conversation.success) return undefined;
  if (cut < 0) return { conversation: conversation.data };
  const skill = SkillName.safeParse(user.slice(cut + 1));
  return skill.success ? { conversation: conversation.data, skill: skill.data } : undefined;
}

/**
 * What one request may reach: the conversation's policy grants, and a skill's approved hosts only for
 * that skill's own credential and only while the skill is enabled and approved (`skillHosts` undefined
 * otherwise: looked up per connection, so a disabled skill's credential reaches nothing beyond the policy).
 */
export function grantsForIdentity(
  identity: ProxyIdentity,
  policy: readonly Grant[],
  skillHosts: readonly Grant[] | undefined,
): Grant[] {
  if (!identity.skill || !skillHosts) return [...policy];
  return [...new Set([...policy, ...skillHosts])];
}

/**
 * A tunnelled connection's identity: its credentials', plus the skill the sandbox's runtime named for
 * the stream it came on (by the connecting process's uid), when those credentials are that sandbox's
 * own. Another conversation's stream, or a skill's credential, adds nothing.
 */
export function withStreamSkill(
  identity: ProxyIdentity | undefined,
  stream: { conversation: ConversationId; skill: string } | undefined,
): ProxyIdentity | undefined {
  if (!identity || identity.skill || !stream || stream.conversation !== identity.conversation)
    return identity;
  return { conversation: identity.conversation, skill: stream.skill };
}

/** The same proxy URL with other credentials in it. */
export function withCredentials(proxyUrl: string, credentials: string): string {
  return proxyUrl.replace(/^(https?:\/\/)[^@/]*@/, `$1${credentials}@`);
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
