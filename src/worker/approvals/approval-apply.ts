import type { Approval } from '../../contracts/approvals/approval.js';
import { AuditActor } from '../../contracts/audit/events.js';
import type { ConversationId } from '../../contracts/conversation/id.js';
import { Grant } from '../../contracts/policy/network-policy.js';
import type { AuditRecorder } from '../../shared/audit/audit-log.js';
import type { ApprovalAllowances } from '../../shared/stores/approval-allowances.js';
import type { NetworkPolicyStore } from '../../shared/stores/policy-store.js';

/** One hour: how long an "Approve for 1 hour" holds. */
export const HOUR_MS = 3600_000;

/** What approvals of skills need: whether a skill may be enabled, and enabling it (as `skill enable`). */
export interface SkillApprovals {
  /** Why this skill cannot be enabled (unknown, not approved by an admin, changed); undefined: it can. */
  refusal(name: string): Promise<string | undefined>;
  /** Enables it for the conversation; the answer in words. */
  enable(conversation: ConversationId, name: string, by: AuditActor): Promise<string>;
}

export interface ApplyDeps {
  network: Pick<NetworkPolicyStore, 'allow'>;
  allowances: Pick<ApprovalAllowances, 'add'>;
  skills?: SkillApprovals;
  audit?: AuditRecorder;
}

export type Applied = { ok: boolean; text: string };

/**
 * Carries out an approved request, through the same rules as an admin's grant: a network grant parsed
 * by the Grant schema (one host or `*.suffix`), a skill only if an admin approved it, more sub-agents.
 * "For 1 hour" goes to the allowances that lapse; "for this conversation" to the admin stores.
 */
export async function applyApproval(deps: ApplyDeps, approval: Approval, now = Date.now()): Promise<Applied> {
  const by = AuditActor.safeParse(approval.decidedBy);
  const actor: AuditActor = by.success ? by.data : 'gateway';
  const until = approval.scope === 'hour' ? now + HOUR_MS : undefined;
  const entry = { kind: approval.kind, target: approval.target, approval: approval.id };
  const lapse = until ? ` until ${new Date(until).toISOString().replace(/\.\d+Z$/, 'Z')}` : '';
  switch (approval.kind) {
    case 'network': {
      const grant = Grant.safeParse(approval.target);
      if (!grant.success) return { ok: false, text: `"${approval.target}" cannot be granted` };
      if (until) await deps.allowances.add(approval.conversation, entry, until);
      else {
        const grants = await deps.network.allow(approval.conversation, [grant.data], actor);
        await deps.audit?.record({
          conversation: approval.conversation,
          turnId: approval.turnId,
          actor,
          kind: 'policy.change',
          data: { policy: 'network', grants, approval: approval.id },
        });
      }
      return {
        ok: true,
        text: `${grant.data} is granted${lapse}. If this sandbox already has network access (HTTP_PROXY is set) it works at once; otherwise from your next turn (a sandbox keeps the network it started the turn with): then finish this turn, saying what you will fetch next.`,
      };
    }
    case 'skill':
      return applySkill(deps, approval, actor, until, lapse);
    case 'delegate':
      await deps.allowances.add(approval.conversation, entry, until);
      return { ok: true, text: `you may start ${approval.target} more sub-agent(s) than the limit${lapse}` };
  }
}

async function applySkill(
  deps: ApplyDeps,
  approval: Approval,
  actor: AuditActor,
  until: number | undefined,
  lapse: string,
): Promise<Applied> {
  if (!deps.skills) return { ok: false, text: 'but this worker has no skills folder: nothing was enabled' };
  const refused = await deps.skills.refusal(approval.target);
  if (refused) return { ok: false, text: `but skill ${approval.target} cannot be enabled: ${refused}` };
  if (!until)
    return { ok: true, text: await deps.skills.enable(approval.conversation, approval.target, actor) };
  await deps.allowances.add(
    approval.conversation,
    { kind: 'skill', target: approval.target, approval: approval.id },
    until,
  );
  await deps.audit?.record({
    conversation: approval.conversation,
    turnId: approval.turnId,
    actor,
    kind: 'policy.change',
    data: { policy: 'skills', enabled: approval.target, until: new Date(until).toISOString() },
  });
  return { ok: true, text: `skill ${approval.target} is enabled${lapse}, from the next turn` };
}
