import { z } from 'zod';
import { ConversationId } from '../conversation/id.js';
import { ReplyRoute } from '../protocol/inbound.js';

/**
 * An approval request: the agent asked (host tool `request_access`) for more than it has — a host to
 * reach, a skill, more sub-agents — and a person decides on a card in the conversation's thread, in
 * the web chat or in the console. One record per request in Redis (approval-store.ts); a decision is
 * applied once, whoever clicks first.
 */

export const ApprovalKind = z.enum(['network', 'skill', 'delegate']);
export type ApprovalKind = z.infer<typeof ApprovalKind>;

/** What a person may click: approve for the conversation, approve for one hour, or deny. */
export const ApprovalDecision = z.enum(['approve', 'approve_hour', 'deny']);
export type ApprovalDecision = z.infer<typeof ApprovalDecision>;

export const ApprovalStatus = z.enum(['pending', 'approved', 'denied', 'expired']);
export type ApprovalStatus = z.infer<typeof ApprovalStatus>;

export const APPROVAL_ID_PATTERN = /^apr_[A-Za-z0-9_-]{8,40}$/;
export const ApprovalId = z.string().regex(APPROVAL_ID_PATTERN, 'an approval id (apr_…)');

export const Approval = z.object({
  id: ApprovalId,
  conversation: ConversationId,
  platform: z.enum(['web', 'slack', 'discord']),
  /** Where the conversation's replies go: the card is posted there. */
  route: ReplyRoute.default({}),
  kind: ApprovalKind,
  /** What is asked for: a host (`pypi.org`, `api.example.com:8443`), a skill name, or a sub-agent count. */
  target: z.string().min(1).max(260),
  /** The agent's words: shown marked as such, never trusted. */
  reason: z.string().max(1000),
  /** The turn that asked (it waits for the decision). */
  turnId: z.string().max(300),
  /** Who started the conversation (`<platform>:<user id>`), when known: an approver under `owner`. */
  owner: z.string().max(300).optional(),
  requestedAt: z.iso.datetime(),
  /** Epoch ms after which the request counts as denied (expired). */
  expiresAtMs: z.number().int().nonnegative(),
  status: ApprovalStatus,
  /** The audit actor who decided (`user:slack:U1`, `admin:console:ana`, `worker:…` for an expiry). */
  decidedBy: z.string().max(300).optional(),
  /** A display name for who decided, when the platform gave one. */
  decidedByName: z.string().max(200).optional(),
  decidedAt: z.iso.datetime().optional(),
  /** How long an approval holds: the conversation, or one hour from the decision. */
  scope: z.enum(['conversation', 'hour']).optional(),
  /** Why it ended without a person's decision (expired, the turn ended first). */
  note: z.string().max(300).optional(),
});
export type Approval = z.infer<typeof Approval>;

/** The scope and status a decision leads to. */
export function decisionOutcome(decision: ApprovalDecision): {
  status: ApprovalStatus;
  scope?: 'conversation' | 'hour';
} {
  if (decision === 'deny') return { status: 'denied' };
  return { status: 'approved', scope: decision === 'approve_hour' ? 'hour' : 'conversation' };
}

/** A button's action id / custom id: `sandbot_approval:<decision>:<approval id>` (under Discord's 100). */
export function approvalButtonId(id: string, decision: ApprovalDecision): string {
  return `sandbot_approval:${decision}:${id}`;
}

/** Reads a button id back; undefined when it is not one of ours or is malformed. */
export function parseApprovalButtonId(value: string): { id: string; decision: ApprovalDecision } | undefined {
  const match = /^sandbot_approval:([a-z_]+):(.+)$/.exec(value);
  if (!match) return undefined;
  const decision = ApprovalDecision.safeParse(match[1]);
  const id = ApprovalId.safeParse(match[2]);
  return decision.success && id.success ? { id: id.data, decision: decision.data } : undefined;
}
