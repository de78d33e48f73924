import type { Redis } from 'ioredis';
import type { ConversationId } from '../../src/contracts/conversation/id.js';
import type { FileRef, InboundMessage, ReplyRoute } from '../../src/contracts/protocol/inbound.js';
import { DISCORD_TTL, type DiscordKeys } from '../../src/contracts/redis/chat-keys.js';
import type { AdapterDeps } from '../../src/gateway/chat-adapter.js';
import type { LimitAdmission, LimitRequest } from '../../src/gateway/rate-limiter.js';
import type { AccessPolicy } from './access.js';
import { placeConversationId } from './conversation.js';
import type { DiscordApi } from './discord-api.js';
import { type DiscordChannel, type Place, placeOf } from './payloads.js';

/** Threads sandbot took part in (started, was mentioned or commanded in), in Redis for every gateway. */
export class ThreadRegistry {
  constructor(
    private readonly redis: Redis,
    private readonly keys: DiscordKeys,
  ) {}

  async add(threadId: string): Promise<void> {
    await this.redis.set(this.keys.thread(threadId), '1', 'EX', DISCORD_TTL.thread);
  }

  async has(threadId: string): Promise<boolean> {
    return (await this.redis.exists(this.keys.thread(threadId))) === 1;
  }
}

/**
 * Channel facts (type, parent, owner) for a message's channel: from the client's cache (filled by
 * GUILD_CREATE and THREAD_CREATE), else from the REST API once, then remembered.
 */
export class ChannelDirectory {
  private readonly known = new Map<string, DiscordChannel>();

  constructor(
    private readonly api: DiscordApi,
    private readonly cached: (id: string) => DiscordChannel | undefined,
  ) {}

  async placeOf(channelId: string, guildId: string | undefined): Promise<Place> {
    // A message without a guild is a DM; its channel needs no lookup.
    if (!guildId) return { kind: 'dm', channelId };
    let channel = this.known.get(channelId) ?? this.cached(channelId);
    if (!channel) {
      channel = await this.api.channel(channelId);
      if (this.known.size > 10_000) this.known.clear();
      this.known.set(channelId, channel);
    }
    return placeOf(channel, guildId);
  }
}

export interface HandlerContext {
  deps: AdapterDeps;
  api: DiscordApi;
  policy: AccessPolicy;
  keys: DiscordKeys;
  threads: ThreadRegistry;
  channels: ChannelDirectory;
  /** The bot's own user id (known after READY). */
  botId(): string | undefined;
}

export interface Submission {
  id: string;
  conversation: ConversationId;
  user: { id: string; name: string };
  text: string;
  route: ReplyRoute;
  files?: FileRef[];
  command?: InboundMessage['command'];
}

/** Hands a message to the queue; text longer than allowed is cut with a note the agent can read. */
export async function submitMessage(context: HandlerContext, submission: Submission) {
  const max = context.deps.config.SANDBOT_MAX_MESSAGE_CHARS;
  const note = '\n[message cut: it was longer than sandbot accepts]';
  const text =
    submission.text.length > max ? `${submission.text.slice(0, max - note.length)}${note}` : submission.text;
  const message: InboundMessage = {
    id: submission.id,
    conversation: submission.conversation,
    platform: 'discord',
    user: submission.user,
    text,
    receivedAt: new Date().toISOString(),
    route: submission.route,
    files: submission.files ?? [],
    ...(submission.command ? { command: submission.command } : {}),
  };
  const result = await context.deps.submit(message);
  if (result.status === 'duplicate') {
    context.deps.logger.debug({ messageId: message.id }, 'discord: message already queued (replayed event)');
  }
  return result;
}

/**
 * Asks the rate limits before a person's message (or `/ask`) is taken. Undefined when they cannot be
 * asked (Redis down): then the message is not taken either, and the caller says so.
 */
export async function admitMessage(
  context: HandlerContext,
  request: Omit<LimitRequest, 'platform'>,
): Promise<LimitAdmission | undefined> {
  const { deps } = context;
  const admission = await deps.limits.admit({ platform: 'discord', ...request }).catch((error: unknown) => {
    deps.logger.error({ err: error, messageId: request.messageId }, 'discord: rate limits unavailable');
    return undefined;
  });
  if (admission && !admission.allowed) {
    deps.logger.info(
      { limit: admission.limit, user: request.user, told: admission.tell },
      'discord: message refused by a rate limit',
    );
    if (admission.tell && request.conversation) {
      void deps.audit?.record({
        conversation: request.conversation,
        actor: `user:discord:${request.user}`,
        kind: 'limit.hit',
        data: { limit: admission.limit, max: admission.max },
      });
    }
  }
  return admission;
}

/** A refused request, at warn, in the shape the audit log will take over. */
export function logRefusal(
  context: HandlerContext,
  details: { user: string; place: Place; reason: string; via: string },
): void {
  context.deps.logger.warn(
    {
      audit: 'access_refused',
      platform: 'discord',
      user: details.user,
      guild: details.place.kind === 'dm' ? undefined : details.place.guildId,
      channel: details.place.channelId,
      reason: details.reason,
      via: details.via,
    },
    'discord: access refused',
  );
  // Ids come from Discord's payloads (zod-checked snowflakes); should one not parse, there is nothing to file under.
  const where = safely(() => placeConversationId(details.place));
  if (where) {
    void context.deps.audit?.record({
      conversation: where,
      actor: `user:discord:${details.user}`,
      kind: 'access.refused',
      data: { reason: details.reason, via: details.via },
    });
  }
}

function safely<T>(fn: () => T): T | undefined {
  try {
    return fn();
  } catch {
    return undefined;
  }
}
