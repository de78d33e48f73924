import { z } from 'zod';
import { ConversationId } from '../../src/contracts/conversation/id.js';
import type { ReplyRoute } from '../../src/contracts/protocol/inbound.js';
import { type Place, Snowflake } from './payloads.js';

/**
 * Discord conversations: a thread is `discord:<guild>:<parent channel>:<thread>`, a DM
 * `discord:dm:<channel>`. All are stable Discord ids, so every gateway derives the same id; the parent
 * channel is in it so that config rules (network, ephemeral) can name a channel, as with Slack.
 */
export function discordConversationId(
  guildId: string | undefined,
  channelId: string,
  parentId?: string,
): ConversationId {
  if (!guildId) return ConversationId.parse(`discord:dm:${channelId}`);
  return ConversationId.parse(`discord:${guildId}:${parentId ? `${parentId}:` : ''}${channelId}`);
}

/** The conversation a DM, a thread or (for records only) a channel stands for. */
export function placeConversationId(place: Place): ConversationId {
  if (place.kind === 'dm') return discordConversationId(undefined, place.channelId);
  return discordConversationId(
    place.guildId,
    place.channelId,
    place.kind === 'thread' ? place.parentId : undefined,
  );
}

/** An interaction token lives 15 minutes; edits need a margin before that. */
export const INTERACTION_TOKEN_MS = 15 * 60_000;
const TOKEN_MARGIN_MS = 30_000;

/**
 * Where the worker's events for a message go. With an interaction, the answer edits the command's
 * deferred response while the token lives, and goes to the channel after.
 */
export const DiscordRoute = z.object({
  channelId: Snowflake,
  guildId: Snowflake.optional(),
  applicationId: Snowflake.optional(),
  interactionToken: z.string().min(1).optional(),
  /** Epoch ms when the interaction token expires. */
  interactionExpiresAt: z.number().optional(),
});
export type DiscordRoute = z.infer<typeof DiscordRoute>;

export function channelRoute(channelId: string, guildId?: string): ReplyRoute {
  return { channelId, ...(guildId ? { guildId } : {}) };
}

export function interactionRoute(
  channelId: string,
  guildId: string | undefined,
  interaction: { applicationId: string; token: string },
  receivedAt: number,
): ReplyRoute {
  return {
    ...channelRoute(channelId, guildId),
    applicationId: interaction.applicationId,
    interactionToken: interaction.token,
    interactionExpiresAt: receivedAt + INTERACTION_TOKEN_MS,
  };
}

/** The interaction whose response may still be edited, or null when the route has none or it expired. */
export function liveInteraction(
  route: DiscordRoute,
  now: number,
): { applicationId: string; token: string } | null {
  if (!route.interactionToken || !route.applicationId || route.interactionExpiresAt === undefined)
    return null;
  if (route.interactionExpiresAt - TOKEN_MARGIN_MS <= now) return null;
  return { applicationId: route.applicationId, token: route.interactionToken };
}

/** A thread name from the task: its first line, at most Discord's 100 characters. */
export function threadName(text: string): string {
  const line = text.split('\n').find((l) => l.trim() !== '') ?? '';
  const clean = line
    .replace(/<[@#][!&]?\d+>/g, '')
    .replace(/\s+/g, ' ')
    .trim();
  if (clean === '') return 'sandbot task';
  return clean.length > 100 ? `${clean.slice(0, 99)}…` : clean;
}
