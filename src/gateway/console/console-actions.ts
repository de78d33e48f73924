import { randomUUID } from 'node:crypto';
import { isIP } from 'node:net';
import { z } from 'zod';
import { APPROVAL_ID_PATTERN, ApprovalDecision } from '../../contracts/approvals/approval.js';
import type { AuditActor } from '../../contracts/audit/events.js';
import { type ConversationId, platformOf } from '../../contracts/conversation/id.js';
import { forbiddenAddress, Grant } from '../../contracts/policy/network-policy.js';
import type { InboundMessage, ReplyRoute } from '../../contracts/protocol/inbound.js';
import type { AuditRecorder } from '../../shared/audit/audit-log.js';
import type { ConversationControl } from '../../shared/queue/conversation-control.js';
import type { SubmitResult } from '../../shared/queue/inbound-queue.js';
import type { ApprovalStore } from '../../shared/stores/approval-store.js';

/** A console action on one conversation, parsed from its form. */
export type ConsoleAction =
  | { kind: 'kill'; reason: string }
  | { kind: 'release' }
  | { kind: 'stop' }
  | { kind: 'reset' }
  | { kind: 'grant'; grants: Grant[] }
  | { kind: 'revoke'; host: Grant }
  | { kind: 'invalid'; message: string };

export const CONVERSATION_ACTIONS = ['kill', 'release', 'stop', 'reset', 'grant', 'revoke'] as const;

/** One host an operator typed, as a grant, or why not (private addresses, too-wide wildcards, junk). */
export function parseHost(host: string): { grant: Grant } | { error: string } {
  // IPv6 literals never match Grant's host syntax; IPv4 ones do, and Grant refuses private ones.
  const bare = host.replace(/^\[|\]$/g, '');
  if (isIP(bare) === 6) {
    const why = forbiddenAddress(bare);
    if (why) return { error: `"${host}" is refused: ${why}` };
  }
  const parsed = Grant.safeParse(host);
  if (!parsed.success) {
    return { error: `"${host}" is not ${z.prettifyError(parsed.error).replace(/^✖ /, '').split('\n')[0]}` };
  }
  return { grant: parsed.data };
}

const text = (value: unknown) => (typeof value === 'string' ? value.trim() : '');

export function parseAction(name: string, form: Record<string, unknown>): ConsoleAction {
  switch (name) {
    case 'kill': {
      const reason = text(form.reason).replace(/\s+/g, ' ').slice(0, 500);
      return reason
        ? { kind: 'kill', reason }
        : { kind: 'invalid', message: 'say why: a kill needs a reason' };
    }
    case 'release':
    case 'stop':
    case 'reset':
      return { kind: name };
    case 'grant': {
      const hosts = text(form.hosts)
        .split(/[\s,]+/)
        .filter(Boolean)
        .slice(0, 20);
      if (hosts.length === 0) return { kind: 'invalid', message: 'name at least one host to grant' };
      const grants: Grant[] = [];
      for (const host of hosts) {
        const parsed = parseHost(host);
        if ('error' in parsed) return { kind: 'invalid', message: `Nothing granted: ${parsed.error}` };
        grants.push(parsed.grant);
      }
      return { kind: 'grant', grants };
    }
    case 'revoke': {
      const parsed = Grant.safeParse(text(form.host));
      return parsed.success
        ? { kind: 'revoke', host: parsed.data }
        : { kind: 'invalid', message: 'no such host' };
    }
    default:
      return { kind: 'invalid', message: `unknown action "${name}"` };
  }
}

/** Where a reply to a conversation goes, from its id alone (the reset's answer is posted there). */
export function routeOf(conversation: ConversationId): ReplyRoute {
  const [platform, a = '', b = '', c] = conversation.split(':');
  if (platform === 'slack') return { team: a, channel: b, ...(c && c !== 'dm' ? { thread_ts: c } : {}) };
  if (platform === 'discord') {
    if (a === 'dm') return { channelId: b };
    return { channelId: c ?? b, guildId: a };
  }
  return {};
}

export interface ActionDeps {
  control: ConversationControl;
  audit?: AuditRecorder;
  submit(message: InboundMessage): Promise<SubmitResult>;
}

/** Carries out an action as `actor` (admin:console:<name>); the note the operator reads next. */
export async function runAction(
  deps: ActionDeps,
  conversation: ConversationId,
  action: ConsoleAction,
  operator: { actor: AuditActor; name: string },
): Promise<string> {
  const { control } = deps;
  const by = operator.actor;
  switch (action.kind) {
    case 'invalid':
      return action.message;
    case 'kill':
      await control.kill(conversation, by, action.reason);
      return `Killed ${conversation}: its sandbox is stopped and the conversation quarantined until released.`;
    case 'release':
      return (await control.release(conversation, by))
        ? `Released ${conversation}: it runs again on its next message.`
        : `${conversation} was not quarantined.`;
    case 'stop': {
      const stopped = await control.stop(conversation, by);
      await deps.audit?.record({
        conversation,
        actor: by,
        kind: 'admin.action',
        data: {
          action: 'stop',
          detail: stopped ? 'the running turn was asked to stop' : 'no turn was running',
        },
      });
      return stopped ? 'The running turn was asked to stop.' : 'No turn was running.';
    }
    case 'reset':
      await deps.audit?.record({ conversation, actor: by, kind: 'admin.action', data: { action: 'reset' } });
      await deps.submit({
        id: `console-reset:${randomUUID()}`,
        conversation,
        platform: platformOf(conversation),
        user: { id: 'console', name: operator.name.slice(0, 128) },
        text: '',
        receivedAt: new Date().toISOString(),
        route: routeOf(conversation),
        files: [],
        command: 'reset',
      });
      return 'Reset queued: the workspace and history are wiped in order with the messages before it.';
    case 'grant': {
      const now = await control.allowNetwork(conversation, action.grants, by);
      return `Granted ${action.grants.join(', ')}; the conversation now has ${now.join(', ')} (from its next turn).`;
    }
    case 'revoke':
      return (await control.revokeNetwork(conversation, action.host, by))
        ? `Revoked ${action.host} (from the next turn).`
        : `${action.host} was not granted.`;
  }
}

/** Decides an approval request as the operator; the note says what happened. */
export async function decideApproval(
  approvals: ApprovalStore,
  id: string,
  rawDecision: unknown,
  operator: { actor: AuditActor; name: string },
): Promise<string> {
  if (!APPROVAL_ID_PATTERN.test(id)) return 'No such request.';
  const decision = ApprovalDecision.safeParse(rawDecision);
  if (!decision.success) return 'Unknown decision: approve, approve_hour or deny.';
  const result = await approvals.decide(id, decision.data, { actor: operator.actor, name: operator.name });
  switch (result.outcome) {
    case 'unknown':
      return 'No such request (it may be long gone).';
    case 'decided':
      return `${result.approval.status === 'approved' ? 'Approved' : 'Denied'}: ${result.approval.kind} ${result.approval.target} for ${result.approval.conversation}.`;
    case 'already':
      return `Already ${result.approval.status} by ${result.approval.decidedByName ?? result.approval.decidedBy ?? 'someone'}: nothing changed.`;
    case 'expired':
      return 'Too late: the request had expired (denied).';
  }
}
