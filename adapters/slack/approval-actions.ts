import type { webApi } from '@slack/bolt';
import { z } from 'zod';
import { parseApprovalButtonId } from '../../src/contracts/approvals/approval.js';
import type { Logger } from '../../src/contracts/log/logger.js';
import { decideApprovalClick } from '../../src/gateway/approval-click.js';
import type { AdapterDeps } from '../../src/gateway/chat-adapter.js';
import { type AccessPolicy, isAdmin } from './access.js';
import { slackApprovalCard } from './approval-card.js';
import { SlackId, SlackTs } from './slack-event.js';

/** The parts of a `block_actions` payload a click on an approval button needs (HTTP and Socket Mode alike). */
export const BlockActions = z.object({
  type: z.literal('block_actions'),
  user: z.object({
    id: SlackId,
    username: z.string().optional(),
    name: z.string().optional(),
    team_id: SlackId.optional(),
  }),
  actions: z.array(z.object({ action_id: z.string(), type: z.string().optional() })).min(1),
  container: z.object({ channel_id: SlackId.optional(), message_ts: SlackTs.optional() }).optional(),
  channel: z.object({ id: SlackId }).optional(),
  message: z.object({ ts: SlackTs }).optional(),
});
export type BlockActions = z.infer<typeof BlockActions>;

/** Answers the clicker only (Bolt's `respond` through the payload's response_url). */
export type RespondEphemeral = (text: string) => Promise<void>;

/**
 * Approval buttons in Slack: Bolt acks first (Slack's 3 seconds), then this decides through the shared
 * click logic and answers: the clicked card edited at once to show who decided and when, or an
 * ephemeral note for a refusal, a request already decided or one that expired.
 */
export class SlackApprovalActions {
  constructor(
    private readonly d: {
      deps: AdapterDeps;
      client: webApi.WebClient;
      policy: AccessPolicy;
      logger: Logger;
    },
  ) {}

  async onClick(body: unknown, respond: RespondEphemeral): Promise<void> {
    const parsed = BlockActions.safeParse(body);
    const button = parsed.success
      ? parseApprovalButtonId(parsed.data.actions[0]?.action_id ?? '')
      : undefined;
    if (!parsed.success || !button) {
      this.d.logger.warn({ issue: parsed.error?.issues[0]?.message }, 'slack: approval click not understood');
      return;
    }
    const click = parsed.data;
    const channel = click.container?.channel_id ?? click.channel?.id ?? '';
    const outcome = await decideApprovalClick(this.d.deps, {
      platform: 'slack',
      approvalId: button.id,
      decision: button.decision,
      channel,
      user: { id: click.user.id, name: click.user.username ?? click.user.name ?? click.user.id },
      isAdmin: isAdmin(this.d.policy, click.user.id),
    });
    if (outcome.kind !== 'decided') await respond(outcome.note);
    if (outcome.kind === 'decided' || outcome.kind === 'already' || outcome.kind === 'expired') {
      const ts = click.container?.message_ts ?? click.message?.ts;
      if (ts) await this.showOnCard(channel, ts, outcome.approval);
    }
  }

  /** Edits the clicked card to the request's state; an edit repeats harmlessly. */
  private async showOnCard(
    channel: string,
    ts: string,
    approval: Parameters<typeof slackApprovalCard>[0],
  ): Promise<void> {
    const card = slackApprovalCard(approval);
    await this.d.client.chat.update({ channel, ts, text: card.text, blocks: card.blocks });
  }
}
