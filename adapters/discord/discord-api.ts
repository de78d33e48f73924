import { DiscordAPIError, type REST, Routes } from 'discord.js';
import { z } from 'zod';
import { DiscordChannel, Snowflake } from './payloads.js';

/** A file to upload with a message. */
export interface UploadFile {
  name: string;
  data: Buffer;
}

export interface MessageBody {
  content: string;
  files?: UploadFile[];
}

const Created = z.object({ id: Snowflake, channel_id: Snowflake.optional() });

/** Interaction callback types (discord-api-types InteractionResponseType). */
const CALLBACK_MESSAGE = 4;
const CALLBACK_DEFERRED = 5;
/** A component's interaction answered by editing the message the component is on. */
const CALLBACK_UPDATE_MESSAGE = 7;
const EPHEMERAL = 64;
/** No link previews under a message (the agent's words could name any URL). */
const SUPPRESS_EMBEDS = 4;

/** A message with components (an approval card); `components: []` removes them. */
export interface ComponentsBody {
  content: string;
  components: unknown[];
}

/** Discord error codes the adapter reacts to. */
export const DiscordErrorCode = {
  UnknownInteraction: 10062,
  AlreadyAcknowledged: 40060,
  ThreadAlreadyCreated: 160004,
} as const;

export function discordErrorCode(error: unknown): number | string | undefined {
  return error instanceof DiscordAPIError ? error.code : undefined;
}

/**
 * The REST calls the adapter makes, over @discordjs/rest (which queues per route bucket and waits out
 * 429s). Nothing the agent writes may ping anyone: every post sets `allowed_mentions` to none.
 */
export class DiscordApi {
  constructor(private readonly rest: REST) {}

  private payload(body: MessageBody) {
    const json = {
      content: body.content,
      allowed_mentions: { parse: [] },
      ...(body.files?.length ? { attachments: body.files.map((f, i) => ({ id: i, filename: f.name })) } : {}),
    };
    const files = body.files?.map((f, i) => ({ key: `files[${i}]`, name: f.name, data: f.data }));
    return { body: json, ...(files?.length ? { files } : {}) };
  }

  async postMessage(channelId: string, body: MessageBody): Promise<string> {
    const created = await this.rest.post(Routes.channelMessages(channelId), this.payload(body));
    return Created.parse(created).id;
  }

  async editMessage(channelId: string, messageId: string, content: string): Promise<void> {
    await this.rest.patch(Routes.channelMessage(channelId, messageId), {
      body: { content, allowed_mentions: { parse: [] } },
    });
  }

  /** Posts a message with components (buttons); returns its id. */
  async postCard(channelId: string, body: ComponentsBody): Promise<string> {
    const created = await this.rest.post(Routes.channelMessages(channelId), {
      body: { ...body, allowed_mentions: { parse: [] }, flags: SUPPRESS_EMBEDS },
    });
    return Created.parse(created).id;
  }

  async editCard(channelId: string, messageId: string, body: ComponentsBody): Promise<void> {
    await this.rest.patch(Routes.channelMessage(channelId, messageId), {
      body: { ...body, allowed_mentions: { parse: [] } },
    });
  }

  /** Answers a component's click by editing the message it is on (within the 3 seconds). */
  async updateMessage(interaction: { id: string; token: string }, body: ComponentsBody): Promise<void> {
    await this.rest.post(Routes.interactionCallback(interaction.id, interaction.token), {
      auth: false,
      body: { type: CALLBACK_UPDATE_MESSAGE, data: { ...body, allowed_mentions: { parse: [] } } },
    });
  }

  async typing(channelId: string): Promise<void> {
    await this.rest.post(Routes.channelTyping(channelId));
  }

  async channel(channelId: string): Promise<DiscordChannel> {
    return DiscordChannel.parse(await this.rest.get(Routes.channel(channelId)));
  }

  /** Starts a public thread from a message; the thread's id is the message's. */
  async startThread(channelId: string, messageId: string, name: string): Promise<string> {
    try {
      const thread = await this.rest.post(Routes.threads(channelId, messageId), {
        body: { name, auto_archive_duration: 1440 },
      });
      return Created.parse(thread).id;
    } catch (error) {
      // A replayed event (after a RESUME) asks again: the thread is already there, with the same id.
      if (discordErrorCode(error) === DiscordErrorCode.ThreadAlreadyCreated) return messageId;
      throw error;
    }
  }

  /** Acknowledges a command with "thinking…"; the answer comes later by editing the original. */
  async defer(interaction: { id: string; token: string }, ephemeral = false): Promise<void> {
    await this.rest.post(Routes.interactionCallback(interaction.id, interaction.token), {
      auth: false,
      body: { type: CALLBACK_DEFERRED, data: ephemeral ? { flags: EPHEMERAL } : {} },
    });
  }

  /** Answers a command at once (used for refusals, with `ephemeral` so only the user sees it). */
  async respond(
    interaction: { id: string; token: string },
    content: string,
    ephemeral: boolean,
  ): Promise<void> {
    await this.rest.post(Routes.interactionCallback(interaction.id, interaction.token), {
      auth: false,
      body: {
        type: CALLBACK_MESSAGE,
        data: { content, allowed_mentions: { parse: [] }, ...(ephemeral ? { flags: EPHEMERAL } : {}) },
      },
    });
  }

  /** Edits a command's original response; returns the message's id (it lives in the command's channel). */
  async editOriginal(
    interaction: { applicationId: string; token: string },
    body: MessageBody,
  ): Promise<string> {
    const edited = await this.rest.patch(
      Routes.webhookMessage(interaction.applicationId, interaction.token),
      {
        auth: false,
        ...this.payload(body),
      },
    );
    return Created.parse(edited).id;
  }

  async putCommands(applicationId: string, guildId: string | undefined, commands: unknown[]): Promise<void> {
    const route = guildId
      ? Routes.applicationGuildCommands(applicationId, guildId)
      : Routes.applicationCommands(applicationId);
    await this.rest.put(route, { body: commands });
  }
}
