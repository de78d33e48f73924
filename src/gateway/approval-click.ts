import type { Approval, ApprovalDecision } from '../contracts/approvals/approval.js';
import { approvalCard } from '../contracts/approvals/approval-card.js';
import type { AuditActor } from '../contracts/audit/events.js';
import { APPROVAL_REFUSAL, mayDecideApproval } from '../contracts/policy/approvers.js';
import type { Person } from '../shared/stores/conversation-owner.js';
import type { AdapterDeps } from './chat-adapter.js';
import { conversationOwner } from './commands/owner-check.js';

/**
 * A click on an approval card's button, the part Slack and Discord share: find the request, check that
 * the clicker may decide it, and decide it once (the store's script). The adapters parse the click and
 * answer: the card edited on `decided`, an ephemeral note otherwise, and the card brought up to date on
 * `already` / `expired`. The worker applies the grant and publishes the final event on its own.
 */
export interface ApprovalClick {
  platform: 'slack' | 'discord';
  approvalId: string;
  decision: ApprovalDecision;
  /** Where the clicked message is (Slack channel, Discord channel): it must be the request's. */
  channel: string;
  user: { id: string; name: string };
  isAdmin: boolean;
}

export type ClickOutcome =
  | { kind: 'gone' | 'elsewhere'; note: string }
  | { kind: 'refused'; note: string; approval: Approval }
  | { kind: 'decided'; approval: Approval }
  | { kind: 'already' | 'expired'; note: string; approval: Approval };

export const APPROVAL_GONE = 'This request is gone: it expired long ago or was never made here.';

type ClickDeps = Pick<AdapterDeps, 'approvals' | 'control' | 'tasks' | 'config' | 'audit' | 'logger'>;

export async function decideApprovalClick(deps: ClickDeps, click: ApprovalClick): Promise<ClickOutcome> {
  const approval = await deps.approvals.get(click.approvalId);
  if (!approval) return { kind: 'gone', note: APPROVAL_GONE };
  if (approval.platform !== click.platform || routeChannel(approval) !== click.channel) {
    // An id copied from another platform or channel: not decided from here.
    refuse(deps, click, approval, 'approval-elsewhere');
    return { kind: 'elsewhere', note: APPROVAL_GONE };
  }
  const sender: Person = `${click.platform}:${click.user.id}`;
  const owner = (await conversationOwner(deps, approval.conversation)) ?? approval.owner;
  const allowed = mayDecideApproval({
    approvers: deps.config.SANDBOT_APPROVERS,
    kind: approval.kind,
    isAdmin: click.isAdmin,
    isOwner: owner === sender,
  });
  if (!allowed) {
    refuse(deps, click, approval, 'approver');
    return { kind: 'refused', note: APPROVAL_REFUSAL, approval };
  }
  const actor: AuditActor = `user:${click.platform}:${click.user.id}`;
  const result = await deps.approvals.decide(approval.id, click.decision, {
    actor,
    name: click.user.name,
  });
  switch (result.outcome) {
    case 'unknown':
      return { kind: 'gone', note: APPROVAL_GONE };
    case 'decided':
      return { kind: 'decided', approval: result.approval };
    case 'already':
      return { kind: 'already', note: alreadyNote(result.approval), approval: result.approval };
    case 'expired':
      return {
        kind: 'expired',
        note: 'This request expired before your click: nothing was approved.',
        approval: result.approval,
      };
  }
}

function alreadyNote(approval: Approval): string {
  const outcome = approvalCard(approval).outcome;
  if (approval.status === 'expired') return `This request expired before your click. ${outcome ?? ''}`.trim();
  return `This request was already decided: ${outcome ?? approval.status}.`;
}

/** The channel a platform posts the conversation's replies (and so the card) in. */
function routeChannel(approval: Approval): string | undefined {
  const route = approval.route as Record<string, unknown>;
  const channel = approval.platform === 'slack' ? route.channel : route.channelId;
  return typeof channel === 'string' ? channel : undefined;
}

function refuse(deps: ClickDeps, click: ApprovalClick, approval: Approval, reason: string): void {
  deps.logger.warn(
    {
      audit: 'access_refused',
      platform: click.platform,
      user: click.user.id,
      approval: approval.id,
      reason,
    },
    `${click.platform}: approval click refused`,
  );
  void deps.audit
    ?.record({
      conversation: approval.conversation,
      turnId: approval.turnId,
      actor: `user:${click.platform}:${click.user.id}`,
      kind: 'access.refused',
      data: { reason, via: 'approval button', approval: approval.id, decision: click.decision },
    })
    .catch(() => undefined);
}
