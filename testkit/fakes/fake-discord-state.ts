/**
 * The world a fake Discord keeps: users, a guild with channels and roles, threads, messages and the
 * interaction responses, shaped like Discord's API v10 objects (the fields discord.js and sandbot read).
 */

const DISCORD_EPOCH = 1_420_070_400_000n;
let counter = 0n;

/** A fresh snowflake (18–19 digits, time-ordered), like Discord's. */
export function snowflake(): string {
  counter = (counter + 1n) & 0xfffn;
  return (((BigInt(Date.now()) - DISCORD_EPOCH) << 22n) | (1n << 17n) | counter).toString();
}

export const ChannelTypes = {
  GuildText: 0,
  DM: 1,
  PublicThread: 11,
} as const;

export interface FakeUser {
  id: string;
  username: string;
  bot?: boolean;
}

export interface FakeChannel {
  id: string;
  type: number;
  name?: string;
  guild_id?: string;
  parent_id?: string;
  owner_id?: string;
  /** DM channels: the user on the other side. */
  recipient?: FakeUser;
}

export interface FakeAttachmentFile {
  id: string;
  filename: string;
  size: number;
  data: Buffer;
}

export interface FakeMessage {
  id: string;
  channel_id: string;
  author: FakeUser;
  content: string;
  /** Every content this message had, oldest first (edits append). */
  history: string[];
  attachments: { id: string; filename: string; size: number; data?: Buffer }[];
  /** The interaction token whose original response this message is. */
  interactionToken?: string;
  flags: number;
  deleted?: boolean;
  createdAt: number;
  /** Action rows of components (buttons), as last posted or edited. */
  components?: unknown[];
  /** allowed_mentions as last posted or edited. */
  allowedMentions?: unknown;
}

export interface FakeInteraction {
  id: string;
  token: string;
  channelId: string;
  /** The callback Discord got (type 4 reply, 5 deferred, 7 update of the clicked message), if any. */
  callback?: { type: number; data?: { content?: string; flags?: number; components?: unknown[] } };
  /** A component's interaction: the message the clicked component is on. */
  messageId?: string;
  /** The original response, once the callback created it. */
  original?: FakeMessage;
}

export function userObject(user: FakeUser) {
  return {
    id: user.id,
    username: user.username,
    global_name: user.username,
    discriminator: '0',
    avatar: null,
    ...(user.bot ? { bot: true } : {}),
  };
}

export function memberObject(user: FakeUser, roles: string[]) {
  return {
    user: userObject(user),
    roles,
    joined_at: new Date(0).toISOString(),
    deaf: false,
    mute: false,
    flags: 0,
    permissions: '0',
  };
}

export function channelObject(channel: FakeChannel) {
  const thread =
    channel.type === ChannelTypes.PublicThread
      ? {
          thread_metadata: {
            archived: false,
            auto_archive_duration: 1440,
            archive_timestamp: new Date().toISOString(),
            locked: false,
          },
          member_count: 1,
          message_count: 0,
        }
      : {};
  return {
    id: channel.id,
    type: channel.type,
    ...(channel.name === undefined ? {} : { name: channel.name }),
    ...(channel.guild_id === undefined ? {} : { guild_id: channel.guild_id }),
    ...(channel.parent_id === undefined ? {} : { parent_id: channel.parent_id }),
    ...(channel.owner_id === undefined ? {} : { owner_id: channel.owner_id }),
    ...(channel.recipient === undefined ? {} : { recipients: [userObject(channel.recipient)] }),
    ...thread,
  };
}

export function messageObject(message: FakeMessage, baseUrl: string, guildId?: string) {
  return {
    id: message.id,
    channel_id: message.channel_id,
    ...(guildId === undefined ? {} : { guild_id: guildId }),
    author: userObject(message.author),
    content: message.content,
    timestamp: new Date(message.createdAt).toISOString(),
    edited_timestamp: message.history.length > 1 ? new Date().toISOString() : null,
    tts: false,
    mention_everyone: false,
    mentions: [],
    mention_roles: [],
    attachments: message.attachments.map((a) => ({
      id: a.id,
      filename: a.filename,
      size: a.size,
      url: `${baseUrl}/attachments/${message.channel_id}/${a.id}/${encodeURIComponent(a.filename)}`,
      proxy_url: `${baseUrl}/attachments/${message.channel_id}/${a.id}/${encodeURIComponent(a.filename)}`,
    })),
    embeds: [],
    ...(message.components ? { components: message.components } : {}),
    pinned: false,
    type: 0,
    flags: message.flags,
  };
}

export function roleObject(id: string, name: string, position: number) {
  return {
    id,
    name,
    color: 0,
    hoist: false,
    position,
    permissions: '0',
    managed: false,
    mentionable: false,
    flags: 0,
  };
}

export interface FakeGuild {
  id: string;
  name: string;
  ownerId: string;
  roles: { id: string; name: string }[];
  channels: FakeChannel[];
}

export function guildCreateObject(guild: FakeGuild, threads: FakeChannel[]) {
  return {
    id: guild.id,
    name: guild.name,
    icon: null,
    owner_id: guild.ownerId,
    unavailable: false,
    large: false,
    member_count: 3,
    joined_at: new Date(0).toISOString(),
    features: [],
    roles: [
      roleObject(guild.id, '@everyone', 0),
      ...guild.roles.map((r, i) => roleObject(r.id, r.name, i + 1)),
    ],
    emojis: [],
    stickers: [],
    channels: guild.channels.map(channelObject),
    threads: threads.map(channelObject),
    members: [],
    voice_states: [],
    presences: [],
    stage_instances: [],
    guild_scheduled_events: [],
    soundboard_sounds: [],
  };
}
