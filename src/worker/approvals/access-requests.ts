import type { Redis } from 'ioredis';
import type { Approval } from '../../contracts/approvals/approval.js';
import type { AuditActor } from '../../contracts/audit/events.js';
import type { ConversationId } from '../../contracts/conversation/id.js';
import type { Logger } from '../../contracts/log/logger.js';
import { hostToolDefinition } from '../../contracts/protocol/host-tools.js';
import type { OutboundEvent } from '../../contracts/protocol/outbound.js';
import { isSubAgent } from '../../contracts/tasks/task.js';
import type { AuditRecorder } from '../../shared/audit/audit-log.js';
import type { Turn } from '../../shared/queue/conversation-store.js';
import type { ApprovalStore } from '../../shared/stores/approval-store.js';
import type { HostCall, HostTools } from '../turn/host-tool-relay.js';
import { accessResult, type CheckedRequest, checkAccessRequest, waitSeconds } from './access-request.js';
import { type Applied, type ApplyDeps, applyApproval } from './approval-apply.js';

export interface AccessRequestDeps {
  store: ApprovalStore;
  /** Duplicated for each wait: BLPOP holds its connection until the decision (or the expiry). */
  redis: Redis;
  publish(event: OutboundEvent): Promise<void>;
  /** Who started a conversation (`<platform>:<user id>`), for SANDBOT_APPROVERS=owner. */
  ownerOf(conversation: ConversationId): Promise<string | undefined>;
  apply: ApplyDeps;
  audit?: AuditRecorder;
  /** This worker as an audit actor (`worker:<id>`): who ends a request nobody decided. */
  actor(): AuditActor;
  logger: Logger;
  /** SANDBOT_APPROVAL_TIMEOUT_SECONDS and SANDBOX_TURN_TIMEOUT_SECONDS. */
  settings: { timeoutSeconds: number; turnSeconds: number };
  /** Counts each request's outcome (metrics), if wired. */
  counted?(kind: string, outcome: string): void;
}

type Result = { ok: boolean; output: string };

export const TURN_ENDED_NOTE = 'the turn ended before a decision';

/**
 * The `request_access` host tool: the agent asks a person for a host, a skill or more sub-agents. The
 * worker checks the request (no card for what can never be granted), posts the card, waits for the
 * decision on a blocking Redis connection of its own (no polling, no CPU), applies an approval through
 * the same rules as an admin's grant, edits the card with the outcome and tells the model in words.
 * People only decide (gateway, console); everything after the decision happens here, once.
 */
export class AccessRequests implements HostTools {
  /** When each turn on this worker started (turn id → ms): a wait never outlasts its turn. */
  private readonly started = new Map<string, number>();

  constructor(private readonly deps: AccessRequestDeps) {}

  async offered(turn: Turn) {
    // A sub-agent asks its parent (which may ask a person); it is not offered the tool.
    if (isSubAgent(turn.conversation)) return [];
    const now = Date.now();
    for (const [id, at] of this.started) {
      if (now - at > this.deps.settings.turnSeconds * 2000) this.started.delete(id);
    }
    this.started.set(turn.turnId, now);
    return [hostToolDefinition('request_access')];
  }

  async run(call: HostCall): Promise<Result> {
    if (isSubAgent(call.turn.conversation)) {
      return refused('a sub-agent cannot ask people: tell the agent that started you what you need');
    }
    const checked = checkAccessRequest(call.args);
    if ('error' in checked) return refused(checked.error);
    if (checked.kind === 'skill') {
      const why = this.deps.apply.skills
        ? await this.deps.apply.skills.refusal(checked.target)
        : 'this worker has no skills folder';
      if (why) return refused(`skill ${checked.target} cannot be enabled: ${why}`);
    }
    const seconds = waitSeconds({
      ...this.deps.settings,
      turnStartedMs: this.started.get(call.turn.turnId) ?? Date.now(),
      now: Date.now(),
    });
    if (seconds < 1) {
      return refused('this turn has no time left to wait for a person: ask again early in the next turn');
    }
    const approval = await this.create(call.turn, checked, seconds);
    const final = await this.waitForOutcome(approval, call.signal);
    let applied: Applied | undefined;
    if (final.status === 'approved') {
      applied = await applyApproval(this.deps.apply, final).catch((error: unknown) => ({
        ok: false,
        text: `but applying it failed: ${error instanceof Error ? error.message : String(error)}`,
      }));
    }
    await this.publish(final, 'decided');
    this.deps.counted?.(final.kind, final.status);
    return accessResult(final, applied);
  }

  private async create(turn: Turn, request: CheckedRequest, seconds: number): Promise<Approval> {
    const last = turn.messages.at(-1);
    const owner = await this.deps.ownerOf(turn.conversation);
    const approval = await this.deps.store.create({
      conversation: turn.conversation,
      platform: last?.platform ?? 'web',
      route: last?.route ?? {},
      kind: request.kind,
      target: request.target,
      reason: request.reason,
      turnId: turn.turnId,
      ...(owner ? { owner } : {}),
      timeoutSeconds: seconds,
    });
    await this.deps.audit?.record({
      conversation: turn.conversation,
      turnId: turn.turnId,
      actor: 'agent',
      kind: 'approval.requested',
      data: { approval: approval.id, kind: request.kind, target: request.target, reason: request.reason },
    });
    await this.publish(approval, 'pending');
    return approval;
  }

  /**
   * The decision, or the request ended by this worker: at its expiry, or when the turn ends first (the
   * blocking connection is closed then, which ends the BLPOP). Whichever ends it first counts, once.
   */
  private async waitForOutcome(approval: Approval, signal: AbortSignal): Promise<Approval> {
    const blocking = this.deps.redis.duplicate({
      connectionName: `approval-wait`,
      enableOfflineQueue: true,
      maxRetriesPerRequest: 1,
      commandTimeout: undefined,
    });
    const close = () => blocking.disconnect();
    signal.addEventListener('abort', close, { once: true });
    try {
      if (!signal.aborted) {
        const left = Math.max(0, approval.expiresAtMs - Date.now());
        const decided = await this.deps.store
          .waitForDecision(blocking, approval.id, left)
          .catch((error: unknown) => {
            if (!signal.aborted) this.deps.logger.warn({ err: error }, 'waiting for an approval failed');
            return undefined;
          });
        if (decided && decided.status !== 'pending') return decided;
      }
      const note = signal.aborted ? TURN_ENDED_NOTE : 'Expired without a decision: denied';
      const ended = await this.deps.store.expire(approval.id, this.deps.actor(), note);
      return ended.outcome === 'unknown' ? { ...approval, status: 'expired', note } : ended.approval;
    } finally {
      signal.removeEventListener('abort', close);
      blocking.disconnect();
    }
  }

  /** The card, posted (pending) or edited in place (decided) on the conversation's platform. */
  private async publish(approval: Approval, step: 'pending' | 'decided'): Promise<void> {
    await this.deps
      .publish({
        id: `${approval.id}:${step}`,
        conversation: approval.conversation,
        platform: approval.platform,
        route: approval.route,
        turnId: approval.turnId,
        type: 'approval',
        approval,
      })
      .catch((error: unknown) =>
        this.deps.logger.warn({ err: error, approval: approval.id }, 'approval card not published'),
      );
  }
}

function refused(why: string): Result {
  return { ok: false, output: `request_access refused: ${why}` };
}
