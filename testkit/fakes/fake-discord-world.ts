import type { FakeGateway } from './fake-discord-gateway.js';
import type { RecordedRequest } from './fake-discord-rest.js';
import {
  ChannelTypes,
  channelObject,
  type FakeChannel,
  type FakeGuild,
  type FakeInteraction,
  type FakeMessage,
  type FakeUser,
  messageObject,
  snowflake,
} from './fake-discord-state.js';

/**
 * What a fake Discord knows: one guild with two text channels and three roles, users alice (crew and
 * admin), bob (crew), mallory (another role) and another bot; the channels, threads and DMs created
 * since; every message with its edit history; interactions and their responses.
 */
export class FakeWorld {
  readonly token: string;
  readonly applicationId = snowflake();
  readonly bot: FakeUser = { id: this.applicationId, username: 'sandbot', bot: true };
  readonly roles = { crew: snowflake(), admin: snowflake(), other: snowflake() };
  readonly users = {
    alice: { id: snowflake(), username: 'alice' },
    bob: { id: snowflake(), username: 'bob' },
    mallory: { id: snowflake(), username: 'mallory' },
    otherBot: { id: snowflake(), username: 'otherbot', bot: true },
  } satisfies Record<string, FakeUser>;
  readonly memberRoles = new Map<string, string[]>([
    [this.users.alice.id, [this.roles.crew, this.roles.admin]],
    [this.users.bob.id, [this.roles.crew]],
    [this.users.mallory.id, [this.roles.other]],
  ]);
  readonly guild: FakeGuild;
  readonly general: FakeChannel;
  readonly closed: FakeChannel;
  readonly channels = new Map<string, FakeChannel>();
  readonly messages: FakeMessage[] = [];
  readonly interactions = new Map<string, FakeInteraction>();
  /** Slash commands registered, by guild id (or "global"). */
  readonly commands = new Map<string, unknown>();
  readonly attachmentFiles = new Map<string, Buffer>();
  readonly requests: RecordedRequest[] = [];
  gateway?: FakeGateway;
  baseUrl = '';

  constructor(token: string) {
    this.token = token;
    const guildId = snowflake();
    this.general = { id: snowflake(), type: ChannelTypes.GuildText, name: 'general', guild_id: guildId };
    this.closed = { id: snowflake(), type: ChannelTypes.GuildText, name: 'closed', guild_id: guildId };
    this.guild = {
      id: guildId,
      name: 'Fake Guild',
      ownerId: this.users.alice.id,
      roles: [
        { id: this.roles.crew, name: 'crew' },
        { id: this.roles.admin, name: 'admins' },
        { id: this.roles.other, name: 'other' },
      ],
      channels: [this.general, this.closed],
    };
    for (const channel of this.guild.channels) this.channels.set(channel.id, channel);
  }

  threads(): FakeChannel[] {
    return [...this.channels.values()].filter((c) => c.type === ChannelTypes.PublicThread);
  }

  createMessage(channelId: string, author: FakeUser, content: string, extra: Partial<FakeMessage> = {}) {
    const message: FakeMessage = {
      id: snowflake(),
      channel_id: channelId,
      author,
      content,
      history: [content],
      attachments: [],
      flags: 0,
      createdAt: Date.now(),
      ...extra,
    };
    this.messages.push(message);
    return message;
  }

  editMessage(
    message: FakeMessage,
    body: { content?: unknown; components?: unknown; allowed_mentions?: unknown },
    files: RecordedRequest['files'],
  ): void {
    if (typeof body.content === 'string') {
      message.content = body.content;
      message.history.push(body.content);
    }
    if (Array.isArray(body.components)) message.components = body.components;
    if (body.allowed_mentions !== undefined) message.allowedMentions = body.allowed_mentions;
    for (const file of files) {
      message.attachments.push({
        id: snowflake(),
        filename: file.name,
        size: file.data.length,
        data: file.data,
      });
    }
  }

  /** A message the bot posts; Discord sends the bot its own MESSAGE_CREATE too. */
  botPost(
    channelId: string,
    body: { content?: unknown; components?: unknown },
    files: RecordedRequest['files'],
  ): FakeMessage {
    const message = this.createMessage(channelId, this.bot, '', { history: [] });
    this.editMessage(message, body, files);
    const channel = this.channels.get(channelId);
    this.gateway?.dispatch('MESSAGE_CREATE', {
      ...messageObject(message, this.baseUrl, channel?.guild_id),
      ...(channel?.type === ChannelTypes.DM ? { channel_type: ChannelTypes.DM } : {}),
    });
    return message;
  }

  createThread(parent: FakeChannel, id: string, name: string, ownerId: string): FakeChannel {
    const thread: FakeChannel = {
      id,
      type: ChannelTypes.PublicThread,
      name,
      guild_id: parent.guild_id,
      parent_id: parent.id,
      owner_id: ownerId,
    };
    this.channels.set(id, thread);
    this.gateway?.dispatch('THREAD_CREATE', { ...channelObject(thread), newly_created: true });
    return thread;
  }

  interactionByToken(token: string | undefined): FakeInteraction | undefined {
    return [...this.interactions.values()].find((i) => i.token === token);
  }
}
