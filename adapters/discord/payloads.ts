import { z } from 'zod';

/**
 * The parts of Discord's gateway payloads (API v10) the adapter reads, parsed at the boundary. Unknown
 * fields are ignored, so Discord adding fields breaks nothing; a missing field we rely on fails loudly.
 */

export const Snowflake = z.string().regex(/^\d{15,21}$/, 'a Discord id (snowflake)');

/** Channel types the adapter tells apart (discord-api-types ChannelType). */
export const ChannelType = {
  GuildText: 0,
  DM: 1,
  GroupDM: 3,
  GuildAnnouncement: 5,
  AnnouncementThread: 10,
  PublicThread: 11,
  PrivateThread: 12,
} as const;

const THREAD_TYPES: readonly number[] = [
  ChannelType.AnnouncementThread,
  ChannelType.PublicThread,
  ChannelType.PrivateThread,
];
/** Channels a thread can be started from with a message. */
const THREADABLE_TYPES: readonly number[] = [ChannelType.GuildText, ChannelType.GuildAnnouncement];

export const DiscordUser = z.object({
  id: Snowflake,
  username: z.string(),
  global_name: z.string().nullish(),
  bot: z.boolean().optional(),
});
export type DiscordUser = z.infer<typeof DiscordUser>;

export const DiscordAttachment = z.object({
  id: Snowflake,
  filename: z.string().min(1),
  size: z.number().int().nonnegative(),
  url: z.string().url(),
});
export type DiscordAttachment = z.infer<typeof DiscordAttachment>;

export const DiscordChannel = z.object({
  id: Snowflake,
  type: z.number().int(),
  guild_id: Snowflake.optional(),
  parent_id: Snowflake.nullish(),
  owner_id: Snowflake.nullish(),
});
export type DiscordChannel = z.infer<typeof DiscordChannel>;

/** Message types that carry a user's words: DEFAULT and REPLY (not joins, pins, thread notices). */
const USER_MESSAGE_TYPES: readonly number[] = [0, 19];

export const MessageCreate = z.object({
  id: Snowflake,
  channel_id: Snowflake,
  guild_id: Snowflake.optional(),
  author: DiscordUser,
  member: z.object({ roles: z.array(Snowflake) }).optional(),
  content: z.string(),
  type: z.number().int(),
  webhook_id: Snowflake.optional(),
  mentions: z.array(z.object({ id: Snowflake })).default([]),
  attachments: z.array(DiscordAttachment).default([]),
});
export type MessageCreate = z.infer<typeof MessageCreate>;

const CommandOption = z.object({
  name: z.string(),
  type: z.number().int(),
  value: z.union([z.string(), z.number(), z.boolean()]).optional(),
});

export const InteractionCreate = z.object({
  id: Snowflake,
  application_id: Snowflake,
  /** 2 = application command; other kinds (components, autocomplete) are not used. */
  type: z.number().int(),
  token: z.string().min(1),
  guild_id: Snowflake.optional(),
  channel_id: Snowflake.optional(),
  channel: DiscordChannel.optional(),
  member: z.object({ user: DiscordUser, roles: z.array(Snowflake) }).optional(),
  user: DiscordUser.optional(),
  data: z
    .object({
      name: z.string(),
      options: z.array(CommandOption).default([]),
    })
    .optional(),
});
export type InteractionCreate = z.infer<typeof InteractionCreate>;

/** Where a message or command happened, as the access policy and conversation ids need it. */
export type Place =
  | { kind: 'dm'; channelId: string }
  | { kind: 'thread'; guildId: string; channelId: string; parentId?: string; ownerId?: string }
  | { kind: 'channel'; guildId: string; channelId: string; threadable: boolean };

export function placeOf(channel: DiscordChannel, guildId: string | undefined): Place {
  if (!guildId || channel.type === ChannelType.DM || channel.type === ChannelType.GroupDM) {
    return { kind: 'dm', channelId: channel.id };
  }
  if (THREAD_TYPES.includes(channel.type)) {
    return {
      kind: 'thread',
      guildId,
      channelId: channel.id,
      ...(channel.parent_id ? { parentId: channel.parent_id } : {}),
      ...(channel.owner_id ? { ownerId: channel.owner_id } : {}),
    };
  }
  return {
    kind: 'channel',
    guildId,
    channelId: channel.id,
    threadable: THREADABLE_TYPES.includes(channel.type),
  };
}

/** A user's message the adapter may act on, or why it is none of its business. */
export type UserMessage =
  | { kind: 'ignore'; reason: 'own' | 'bot' | 'webhook' | 'system' }
  | {
      kind: 'message';
      id: string;
      channelId: string;
      guildId?: string;
      user: { id: string; name: string };
      roles: string[];
      text: string;
      mentioned: boolean;
      attachments: DiscordAttachment[];
    };

export function toUserMessage(payload: MessageCreate, botId: string): UserMessage {
  if (payload.author.id === botId) return { kind: 'ignore', reason: 'own' };
  if (payload.webhook_id) return { kind: 'ignore', reason: 'webhook' };
  if (payload.author.bot) return { kind: 'ignore', reason: 'bot' };
  if (!USER_MESSAGE_TYPES.includes(payload.type)) return { kind: 'ignore', reason: 'system' };
  const mentioned =
    payload.mentions.some((m) => m.id === botId) || mentionPattern(botId).test(payload.content);
  return {
    kind: 'message',
    id: payload.id,
    channelId: payload.channel_id,
    ...(payload.guild_id ? { guildId: payload.guild_id } : {}),
    user: { id: payload.author.id, name: payload.author.global_name ?? payload.author.username },
    roles: payload.member?.roles ?? [],
    text: stripMentions(payload.content, botId),
    mentioned,
    attachments: payload.attachments,
  };
}

const mentionPattern = (botId: string) => new RegExp(`<@!?${botId}>`, 'g');

/** The text without the bot's own mentions (`<@id>` or `<@!id>`), trimmed. */
export function stripMentions(content: string, botId: string): string {
  return content
    .replace(mentionPattern(botId), ' ')
    .replace(/[ \t]{2,}/g, ' ')
    .trim();
}

/** A slash command with its string options, and who ran it where. */
export interface SlashCommand {
  id: string;
  token: string;
  applicationId: string;
  name: string;
  options: Record<string, string>;
  user: { id: string; name: string };
  roles: string[];
  place: Place;
}

/** The slash command in an INTERACTION_CREATE, or null for other interaction kinds. */
export function toSlashCommand(payload: InteractionCreate): SlashCommand | null {
  if (payload.type !== 2 || !payload.data) return null;
  const author = payload.member?.user ?? payload.user;
  const channel = payload.channel ?? (payload.channel_id ? { id: payload.channel_id, type: -1 } : undefined);
  if (!author || !channel) return null;
  const options: Record<string, string> = {};
  for (const option of payload.data.options) {
    if (option.value !== undefined) options[option.name] = String(option.value);
  }
  return {
    id: payload.id,
    token: payload.token,
    applicationId: payload.application_id,
    name: payload.data.name,
    options,
    user: { id: author.id, name: author.global_name ?? author.username },
    roles: payload.member?.roles ?? [],
    place: placeOf(channel, payload.guild_id),
  };
}
