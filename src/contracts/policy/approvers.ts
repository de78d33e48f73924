import type { ApprovalKind } from '../approvals/approval.js';

/**
 * Whether a person may decide an approval (SANDBOT_APPROVERS): admins always; under `owner`, also the
 * person who started the thread, except for network access, which stays with admins.
 */
export function mayDecideApproval(options: {
  approvers: 'admins' | 'owner';
  kind: ApprovalKind;
  isAdmin: boolean;
  isOwner: boolean;
}): boolean {
  if (options.isAdmin) return true;
  return options.approvers === 'owner' && options.isOwner && options.kind !== 'network';
}

export const APPROVAL_REFUSAL =
  'Only an approver can decide this request (SANDBOT_APPROVERS: admins, or the thread’s owner for skills and sub-agents).';
