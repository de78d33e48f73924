import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { closeServer } from './close-server.js';
import { FakeGateway } from './fake-discord-gateway.js';
import { type InjectedFailure, readRequest, sendFailure, sendJson } from './fake-discord-rest.js';
import { answerApi } from './fake-discord-routes.js';
import {
  ChannelTypes,
  channelObject,
  type FakeChannel,
  type FakeInteraction,
  type FakeMessage,
  type FakeUser,
  guildCreateObject,
  memberObject,
  messageObject,
  snowflake,
  userObject,
} from './fake-discord-state.js';
import { FakeWorld } from './fake-discord-world.js';

/**
 * A fake Discord on a real socket, for driving the real discord.js client: the REST API v10 under
 * `${apiUrl}/v10` (fake-discord-routes.ts), the gateway WebSocket (fake-discord-gateway.ts), and
 * attachment downloads. Tests act as users (messages, threads, DMs, slash commands), break things
 * (429s, failures, closed or dropped sockets, held reconnections) and read what the bot did.
 */

export interface UserMessageOptions {
  channelId: string;
  content: string;
  author?: FakeUser;
  /** Guild roles of the author (default: the author's roles in this fake). */
  roles?: string[];
  /** Prefix the content with the bot's mention and list the bot in `mentions`. */
  mention?: boolean;
  attachments?: { filename: string; data: Buffer }[];
}

export interface CommandOptions {
  name: string;
  channelId: string;
  options?: Record<string, string>;
  user?: FakeUser;
  roles?: string[];
}

export type FakeDiscord = Awaited<ReturnType<typeof startFakeDiscord>>;

export async function startFakeDiscord(options: { token?: string } = {}) {
  const world = new FakeWorld(options.token ?? 'fake-bot-token');
  const failures: InjectedFailure[] = [];

  const server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', world.baseUrl);
      const file = /^\/attachments\/\d+\/(\d+)\//.exec(url.pathname);
      if (req.method === 'GET' && file) {
        const data = world.attachmentFiles.get(file[1] ?? '');
        if (!data) return sendJson(res, 404, { message: 'no such attachment' });
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': data.length });
        res.end(data);
        return;
      }
      const path = decodeURIComponent(url.pathname).replace(/^\/api\/v10/, '');
      const request = { ...(await readRequest(req)), path, at: Date.now() };
      world.requests.push(request);
      const failure = failures.findIndex((f) => f.method === request.method && f.path.test(path));
      if (failure >= 0) return sendFailure(res, failures.splice(failure, 1)[0] as InjectedFailure);
      answerApi(world, request, res, port);
    })().catch((error: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { message: `fake discord: ${String(error)}`, code: 0 });
      else res.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  world.baseUrl = `http://127.0.0.1:${port}`;
  const gateway = new FakeGateway(server, {
    token: world.token,
    onIdentify: (sessionId) => ({
      ready: {
        v: 10,
        user: userObject(world.bot),
        guilds: [{ id: world.guild.id, unavailable: true }],
        session_id: sessionId,
        resume_gateway_url: `ws://127.0.0.1:${port}`,
        shard: [0, 1],
        application: { id: world.applicationId, flags: 0 },
      },
      after: [{ t: 'GUILD_CREATE', d: guildCreateObject(world.guild, world.threads()) }],
    }),
  });
  world.gateway = gateway;
  const rolesOf = (user: FakeUser, roles?: string[]) => roles ?? world.memberRoles.get(user.id) ?? [];
  const channelOrThrow = (id: string) => {
    const channel = world.channels.get(id);
    if (!channel) throw new Error(`fake discord: no channel ${id}`);
    return channel;
  };
  /** INTERACTION_CREATE from a user (a member with roles in a guild, a user in a DM), as Discord sends it. */
  const interact = (
    channel: FakeChannel,
    by: { user?: FakeUser; roles?: string[] },
    body: { type: number; data: unknown; message?: unknown },
    messageId?: string,
  ): FakeInteraction => {
    const user = by.user ?? world.users.alice;
    const interaction: FakeInteraction = {
      id: snowflake(),
      token: `itok-${snowflake()}`,
      channelId: channel.id,
      ...(messageId ? { messageId } : {}),
    };
    world.interactions.set(interaction.id, interaction);
    const where =
      channel.type === ChannelTypes.DM
        ? { user: userObject(user), context: 1 }
        : { guild_id: channel.guild_id, member: memberObject(user, rolesOf(user, by.roles)), context: 0 };
    gateway.dispatch('INTERACTION_CREATE', {
      id: interaction.id,
      application_id: world.applicationId,
      type: body.type,
      token: interaction.token,
      version: 1,
      data: body.data,
      ...(body.message ? { message: body.message } : {}),
      channel_id: channel.id,
      channel: channelObject(channel),
      ...where,
      app_permissions: '0',
      locale: 'en-US',
      entitlements: [],
      authorizing_integration_owners: {},
    });
    return interaction;
  };

  return {
    apiUrl: `${world.baseUrl}/api`,
    token: world.token,
    applicationId: world.applicationId,
    bot: world.bot,
    guild: world.guild,
    channels: { general: world.general, closed: world.closed },
    roles: world.roles,
    users: world.users,
    gateway,
    requests: world.requests,
    commands: world.commands,

    /** A user posts in a channel, thread or DM channel; the bot receives MESSAGE_CREATE. */
    userMessage(o: UserMessageOptions): FakeMessage {
      const channel = channelOrThrow(o.channelId);
      const author = o.author ?? world.users.alice;
      const message = world.createMessage(
        channel.id,
        author,
        o.mention ? `<@${world.bot.id}> ${o.content}` : o.content,
      );
      for (const a of o.attachments ?? []) {
        const id = snowflake();
        world.attachmentFiles.set(id, a.data);
        message.attachments.push({ id, filename: a.filename, size: a.data.length });
      }
      const dm = channel.type === ChannelTypes.DM;
      gateway.dispatch('MESSAGE_CREATE', {
        ...messageObject(message, world.baseUrl, channel.guild_id),
        mentions: o.mention ? [userObject(world.bot)] : [],
        ...(dm
          ? { channel_type: ChannelTypes.DM }
          : { member: memberObject(author, rolesOf(author, o.roles)) }),
      });
      return message;
    },

    /** The DM channel between a user and the bot (created on first use). */
    dmChannel(user: FakeUser): FakeChannel {
      const existing = [...world.channels.values()].find(
        (c) => c.type === ChannelTypes.DM && c.recipient?.id === user.id,
      );
      if (existing) return existing;
      const channel: FakeChannel = { id: snowflake(), type: ChannelTypes.DM, recipient: user };
      world.channels.set(channel.id, channel);
      return channel;
    },

    /** A thread a user started (not sandbot), announced with THREAD_CREATE. */
    userThread(parentId: string, name: string, owner: FakeUser = world.users.alice): FakeChannel {
      return world.createThread(channelOrThrow(parentId), snowflake(), name, owner.id);
    },

    /** A user runs a slash command; the bot receives INTERACTION_CREATE. */
    command(o: CommandOptions): FakeInteraction {
      return interact(channelOrThrow(o.channelId), o, {
        type: 2,
        data: {
          id: snowflake(),
          name: o.name,
          type: 1,
          options: Object.entries(o.options ?? {}).map(([name, value]) => ({ name, type: 3, value })),
        },
      });
    },

    /**
     * A user clicks a button on a message (the bot's): INTERACTION_CREATE type 3, as Discord sends it,
     * with the whole message and who clicked (a member with roles in a guild, a user in a DM).
     */
    click(o: { message: FakeMessage; customId: string; user?: FakeUser; roles?: string[] }): FakeInteraction {
      const channel = channelOrThrow(o.message.channel_id);
      return interact(
        channel,
        o,
        {
          type: 3,
          data: { custom_id: o.customId, component_type: 2 },
          message: messageObject(o.message, world.baseUrl, channel.guild_id),
        },
        o.message.id,
      );
    },

    channel: (id: string) => world.channels.get(id),
    /** The bot's messages in a channel, oldest first (deleted ones left out). */
    botMessages: (channelId: string) =>
      world.messages.filter((x) => x.channel_id === channelId && !x.deleted && x.author.id === world.bot.id),

    /** Answers the next request matching method and path (API path without /api/v10) with a failure. */
    failNext(failure: InjectedFailure) {
      failures.push(failure);
    },

    /** Polls `check` until it returns something other than undefined, null or false. */
    async waitFor<T>(
      check: () => T | undefined | false | null,
      what: string,
      timeoutMs = 20_000,
    ): Promise<T> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const value = check();
        if (value !== undefined && value !== false && value !== null) return value;
        if (Date.now() > deadline) throw new Error(`fake discord: timed out waiting for ${what}`);
        await sleep(25);
      }
    },

    close: () => {
      gateway.close();
      return closeServer(server);
    },
  };
}
