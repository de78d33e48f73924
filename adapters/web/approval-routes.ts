import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { ApprovalDecision, ApprovalId } from '../../src/contracts/approvals/approval.js';
import { approvalCardText } from '../../src/contracts/approvals/approval-card.js';
import type { Config } from '../../src/contracts/config/schema.js';
import type { Logger } from '../../src/contracts/log/logger.js';
import { APPROVAL_REFUSAL, mayDecideApproval } from '../../src/contracts/policy/approvers.js';
import { sendError } from '../../src/gateway/http-server.js';
import type { ApprovalStore } from '../../src/shared/stores/approval-store.js';
import { describeIssues } from './message-request.js';
import { WEB_API_ACTOR } from './schedule-request.js';

export const APPROVAL_ROUTE = '/api/approvals/:id';

export const decisionBody = z.strictObject({
  decision: ApprovalDecision,
  /** Shown on the card as who decided (the audit actor stays admin:web-api). */
  name: z.string().trim().min(1).max(100).optional(),
});

/** Without an API token nobody on the web is an approver: the chat would let anyone on loopback decide. */
export const NO_TOKEN_REFUSAL =
  'approvals cannot be decided from the web without SANDBOT_API_TOKEN: set it (the web API with the token is an admin), or decide in Slack, Discord or the console';

/**
 * `POST /api/approvals/:id` `{"decision": "approve" | "approve_hour" | "deny"}`: the web chat's buttons.
 * Only a request carrying the API token gets here as an approver (an admin: `admin:web-api`); the route
 * only decides, once (APPROVAL_DECIDE) — the asking worker applies the outcome and edits the card.
 */
export function registerApprovalRoutes(
  scope: FastifyInstance,
  approvals: Pick<ApprovalStore, 'get' | 'decide'>,
  config: Pick<Config, 'SANDBOT_API_TOKEN' | 'SANDBOT_APPROVERS'>,
  log: Logger,
): void {
  scope.post<{ Params: { id: string } }>(APPROVAL_ROUTE, async (request, reply) => {
    // The guard hook let this request through: with a token configured it carried it.
    if (config.SANDBOT_API_TOKEN === undefined) return sendError(reply, 403, NO_TOKEN_REFUSAL);
    const id = ApprovalId.safeParse(request.params.id);
    if (!id.success) return sendError(reply, 400, describeIssues(id.error, 'id'));
    const body = decisionBody.safeParse(request.body);
    if (!body.success) return sendError(reply, 400, describeIssues(body.error));
    try {
      const approval = await approvals.get(id.data);
      if (!approval) return sendError(reply, 404, `no approval request ${id.data}`);
      const allowed = mayDecideApproval({
        approvers: config.SANDBOT_APPROVERS,
        kind: approval.kind,
        isAdmin: true,
        isOwner: false,
      });
      if (!allowed) return sendError(reply, 403, APPROVAL_REFUSAL);
      const name = body.data.name ? `${body.data.name} (web)` : 'the web API';
      const result = await approvals.decide(id.data, body.data.decision, { actor: WEB_API_ACTOR, name });
      switch (result.outcome) {
        case 'unknown':
          return sendError(reply, 404, `no approval request ${id.data}`);
        case 'decided':
          return reply.send({ approval: result.approval });
        case 'already':
        case 'expired':
          return reply.code(409).send({
            error: `already ended: ${approvalCardText(result.approval).split('\n').at(-1)}`,
            approval: result.approval,
          });
      }
    } catch (error) {
      log.warn({ err: error, approval: id.data }, 'deciding an approval failed');
      return sendError(
        reply,
        503,
        'approvals unavailable: Redis cannot be reached (is it up?); try again shortly',
      );
    }
  });
}
