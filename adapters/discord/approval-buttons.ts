import { z } from 'zod';
import { parseApprovalButtonId } from '../../src/contracts/approvals/approval.js';
import { decideApprovalClick } from '../../src/gateway/approval-click.js';
import { isAdmin } from './access.js';
import { discordApprovalCard } from './approval-card.js';
import { DiscordErrorCode, discordErrorCode } from './discord-api.js';
import type { HandlerContext } from './handler-context.js';
import { DiscordUser, Snowflake } from './payloads.js';

/** INTERACTION_CREATE type 3: a click on a component of a message (API v10). */
export const ComponentInteraction = z.object({
  id: Snowflake,
  type: z.literal(3),
  token: z.string().min(1),
  guild_id: Snowflake.optional(),
  channel_id: Snowflake,
  member: z.object({ user: DiscordUser, roles: z.array(Snowflake) }).optional(),
  user: DiscordUser.optional(),
  data: z.object({ custom_id: z.string().max(100), component_type: z.number().int() }),
  message: z.object({ id: Snowflake, channel_id: Snowflake.optional() }),
});
export type ComponentInteraction = z.infer<typeof ComponentInteraction>;

/** A button's interaction (type 3), told apart from slash commands before either is parsed. */
export function isComponentInteraction(raw: unknown): boolean {
  return (raw as { type?: unknown } | null)?.type === 3;
}

/**
 * A click on an approval card's button. Discord wants an answer within 3 seconds: a decision edits the
 * card in that answer (UPDATE_MESSAGE), anything else answers the clicker only (ephemeral) and brings
 * the card up to date with a separate edit.
 */
export async function handleApprovalButton(context: HandlerContext, raw: unknown): Promise<void> {
  const { logger } = context.deps;
  const parsed = ComponentInteraction.safeParse(raw);
  const button = parsed.success ? parseApprovalButtonId(parsed.data.data.custom_id) : undefined;
  if (!parsed.success || !button) {
    logger.warn({ issue: parsed.error?.issues[0]?.message }, 'discord: component click not understood');
    return;
  }
  const click = parsed.data;
  const author = click.member?.user ?? click.user;
  if (!author) return;
  const outcome = await decideApprovalClick(context.deps, {
    platform: 'discord',
    approvalId: button.id,
    decision: button.decision,
    channel: click.channel_id,
    user: { id: author.id, name: author.global_name ?? author.username },
    isAdmin: isAdmin(context.policy, click.member?.roles ?? []),
  });
  try {
    if (outcome.kind === 'decided') {
      await context.api.updateMessage(click, discordApprovalCard(outcome.approval));
      return;
    }
    await context.api.respond(click, outcome.note, true);
  } catch (error) {
    const code = discordErrorCode(error);
    if (code !== DiscordErrorCode.AlreadyAcknowledged && code !== DiscordErrorCode.UnknownInteraction) {
      throw error;
    }
    logger.info({ interaction: click.id, code }, 'discord: click already answered or expired');
  }
  if (outcome.kind === 'already' || outcome.kind === 'expired') {
    await context.api.editCard(click.channel_id, click.message.id, discordApprovalCard(outcome.approval));
  }
}
