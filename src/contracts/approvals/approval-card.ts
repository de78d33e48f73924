import { type Approval, type ApprovalDecision, approvalButtonId } from './approval.js';

/**
 * What an approval card says, the same on Slack, Discord, the web chat and the console: who asked for
 * what, the agent's reason marked as its own words, and — once decided — who decided and when.
 */
export interface ApprovalCard {
  title: string;
  /** The agent's reason, quoted; untrusted words (render as plain text, never as markup). */
  reason: string;
  /** The outcome line once decided or expired; undefined while pending. */
  outcome?: string;
  /** Buttons while pending (none after). */
  buttons: {
    id: string;
    decision: ApprovalDecision;
    label: string;
    style: 'primary' | 'danger' | 'secondary';
  }[];
}

const LABELS: Record<ApprovalDecision, { label: string; style: 'primary' | 'danger' | 'secondary' }> = {
  approve: { label: 'Approve for this conversation', style: 'primary' },
  approve_hour: { label: 'Approve for 1 hour', style: 'secondary' },
  deny: { label: 'Deny', style: 'danger' },
};

export function approvalTitle(approval: Pick<Approval, 'kind' | 'target'>): string {
  switch (approval.kind) {
    case 'network':
      return `🔐 The agent asks for network access to ${approval.target}`;
    case 'skill':
      return `🔐 The agent asks to use the skill ${approval.target}`;
    case 'delegate':
      return `🔐 The agent asks for ${approval.target} more sub-agent(s) than its limit`;
  }
}

function outcomeLine(approval: Approval): string | undefined {
  const when = approval.decidedAt
    ? ` at ${approval.decidedAt.replace('T', ' ').replace(/\.\d+Z$|Z$/, ' UTC')}`
    : '';
  const who = approval.decidedByName ?? approval.decidedBy ?? 'someone';
  switch (approval.status) {
    case 'pending':
      return undefined;
    case 'approved':
      return `✅ Approved ${approval.scope === 'hour' ? 'for 1 hour' : 'for this conversation'} by ${who}${when}`;
    case 'denied':
      return `⛔ Denied by ${who}${when}`;
    case 'expired':
      return `⌛ ${approval.note ?? 'Expired without a decision: denied'}${when}`;
  }
}

export function approvalCard(approval: Approval): ApprovalCard {
  const outcome = outcomeLine(approval);
  return {
    title: approvalTitle(approval),
    reason: `The agent's reason (its own words, not checked): “${approval.reason.replace(/\s+/g, ' ').trim()}”`,
    ...(outcome ? { outcome } : {}),
    buttons:
      approval.status === 'pending'
        ? (['approve', 'approve_hour', 'deny'] as const).map((decision) => ({
            id: approvalButtonId(approval.id, decision),
            decision,
            ...LABELS[decision],
          }))
        : [],
  };
}

/** The card as plain text (fallback text for notifications, and platforms' previews). */
export function approvalCardText(approval: Approval): string {
  const card = approvalCard(approval);
  return [card.title, card.reason, card.outcome].filter(Boolean).join('\n');
}
