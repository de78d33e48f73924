import { isIP } from 'node:net';
import type { Approval, ApprovalKind } from '../../contracts/approvals/approval.js';
import { forbiddenAddress, Grant } from '../../contracts/policy/network-policy.js';
import { HostToolArgs } from '../../contracts/protocol/host-tools.js';

/**
 * The rules of `request_access`, pure: what a request may ask for (checked before any card is posted),
 * how long the turn may wait for it, and the words the model reads as the tool's result.
 * src/worker/approvals/access-requests.ts carries them out.
 */

/** More sub-agents than the limit one request may ask for. */
export const MAX_EXTRA_SUBAGENTS = 10;

/** A request that may be put to a person: its kind, its target (a grant, a skill name, a count) and why. */
export interface CheckedRequest {
  kind: ApprovalKind;
  target: string;
  reason: string;
}

const SKILL_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/i;

/** The model's arguments checked per kind; an error in words for the model otherwise (no card). */
export function checkAccessRequest(args: Record<string, unknown>): CheckedRequest | { error: string } {
  const parsed = HostToolArgs.request_access.safeParse(args);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { error: `invalid arguments: ${issue?.path.join('.') || 'arguments'}: ${issue?.message}` };
  }
  const { kind, reason } = parsed.data;
  const text = reason.replace(/\s+/g, ' ').trim();
  if (!text) return { error: 'say why you need it in "reason"' };
  switch (kind) {
    case 'network': {
      const host = checkHost(parsed.data.host);
      return 'error' in host ? host : { kind, target: host.grant, reason: text };
    }
    case 'skill': {
      const skill = parsed.data.skill?.trim() ?? '';
      if (!SKILL_NAME.test(skill)) return { error: 'kind "skill" needs "skill": the name of a skill' };
      return { kind, target: skill, reason: text };
    }
    case 'delegate': {
      const count = parsed.data.count ?? 1;
      if (count < 1 || count > MAX_EXTRA_SUBAGENTS) {
        return { error: `kind "delegate" asks for 1 to ${MAX_EXTRA_SUBAGENTS} more sub-agents ("count")` };
      }
      return { kind, target: String(count), reason: text };
    }
  }
}

/**
 * A host as an admin could grant it (the Grant schema: one host or `*.suffix` within one domain,
 * optional port), and never a private, loopback or metadata address nor the host's own name.
 */
export function checkHost(raw: string | undefined): { grant: string } | { error: string } {
  if (!raw?.trim()) return { error: 'kind "network" needs "host": e.g. "pypi.org"' };
  const host = raw.trim().toLowerCase();
  // The address first: Grant refuses private literals too, but this says why in fewer words.
  const [name = ''] = host.split(':');
  if (isIP(name)) {
    const why = forbiddenAddress(name);
    if (why) return { error: `"${host}" cannot be granted: ${why}` };
  }
  const parsed = Grant.safeParse(raw);
  if (!parsed.success) {
    return { error: `"${raw.trim()}" cannot be granted: ${parsed.error.issues[0]?.message}` };
  }
  if (name === 'localhost' || name.endsWith('.localhost')) {
    return { error: `"${parsed.data}" is this machine: it is never granted` };
  }
  return { grant: parsed.data };
}

/**
 * How long the turn waits for a decision: the approval timeout, cut so the request ends (and the model
 * hears the outcome) before the turn's own wall time does. Zero: no time left to ask.
 */
export function waitSeconds(options: {
  timeoutSeconds: number;
  /** When this turn started, and its wall time (SANDBOX_TURN_TIMEOUT_SECONDS). */
  turnStartedMs: number;
  turnSeconds: number;
  now: number;
}): number {
  // Kept back so the model still has time to answer after the outcome.
  const margin = Math.min(30, options.turnSeconds / 5);
  const left = (options.turnStartedMs + options.turnSeconds * 1000 - options.now) / 1000 - margin;
  return Math.max(0, Math.floor(Math.min(options.timeoutSeconds, left)));
}

/** Who decided, for the model: the display name, else the audit actor. */
function decider(approval: Approval): string {
  const actor = approval.decidedBy ?? 'someone';
  return approval.decidedByName ? `${approval.decidedByName} (${actor})` : actor;
}

/**
 * The tool result the model reads: the outcome, who decided, and what now holds (`applied`: what the
 * worker did for an approval, or why it could not).
 */
export function accessResult(
  approval: Approval,
  applied?: { ok: boolean; text: string },
): {
  ok: boolean;
  output: string;
} {
  const what = `${approval.kind} ${approval.target}`;
  switch (approval.status) {
    case 'approved': {
      const scope = approval.scope === 'hour' ? 'for 1 hour' : 'for this conversation';
      const head = `request_access (${what}) approved by ${decider(approval)} ${scope}`;
      return { ok: applied?.ok ?? true, output: applied ? `${head}: ${applied.text}` : head };
    }
    case 'denied':
      return { ok: false, output: `request_access (${what}) denied by ${decider(approval)}: do without it` };
    case 'expired':
      return {
        ok: false,
        output: `request_access (${what}) expired without a decision: denied${approval.note && !/^Expired/.test(approval.note) ? ` (${approval.note})` : ''}; do without it`,
      };
    case 'pending':
      return { ok: false, output: `request_access (${what}) is still undecided: denied for now` };
  }
}
