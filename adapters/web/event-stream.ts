import type { Redis } from 'ioredis';
import type { ConversationId } from '../../src/contracts/conversation/id.js';
import { OutboundEvent } from '../../src/contracts/protocol/outbound.js';
import { webKeys } from '../../src/contracts/redis/keys.js';
import { WEB_DELIVER, WEB_EVENT_FIELD } from '../../src/contracts/redis/scripts.js';
import type { WebEventSubscriber, WebStreamEntry } from './ports.js';

/** A Redis stream id as XADD makes it: what a client may send back as Last-Event-ID. */
export const STREAM_ID = /^\d{1,20}-\d{1,20}$/;

const STREAM_MAX_LEN = 1000;
const DELIVERED_TTL_SECONDS = 86_400;
/** A stream untouched this long belongs to an abandoned session: let Redis reclaim it. */
const STREAM_TTL_SECONDS = 7 * 86_400;

export interface WebEventStreamOptions {
  /** How long one XREAD blocks before it is issued again (ms). */
  blockMs?: number;
}

/**
 * Outbound events for the web chat: one Redis stream per conversation, written by `deliver`, read live
 * by `subscribe` (one duplicated connection per subscriber, since XREAD BLOCK holds its connection).
 */
export class WebEventStream implements WebEventSubscriber {
  private readonly blockMs: number;

  constructor(
    private readonly redis: Redis,
    private readonly instance: string,
    options: WebEventStreamOptions = {},
  ) {
    this.blockMs = options.blockMs ?? 10_000;
  }

  /** Appends the event to its conversation's stream. Returns false if this event id was already delivered. */
  async deliver(event: OutboundEvent): Promise<boolean> {
    const parsed = OutboundEvent.parse(event);
    if (parsed.platform !== 'web') {
      throw new Error(
        `web delivery got a ${parsed.platform} event (${parsed.id}): route it to its own adapter`,
      );
    }
    const streamId = await this.redis.eval(
      WEB_DELIVER,
      2,
      webKeys.delivered(this.instance, parsed.id),
      webKeys.events(this.instance, parsed.conversation),
      JSON.stringify(parsed),
      DELIVERED_TTL_SECONDS,
      STREAM_MAX_LEN,
      STREAM_TTL_SECONDS,
    );
    return typeof streamId === 'string';
  }

  async position(conversation: ConversationId): Promise<string> {
    const last = await this.redis.xrevrange(
      webKeys.events(this.instance, conversation),
      '+',
      '-',
      'COUNT',
      1,
    );
    return last[0]?.[0] ?? '0-0';
  }

  async *subscribe(
    conversation: ConversationId,
    afterId: string | undefined,
    signal: AbortSignal,
  ): AsyncGenerator<WebStreamEntry> {
    if (afterId !== undefined && !STREAM_ID.test(afterId)) {
      throw new Error(`"${afterId}" is not an event id: resume from an id this stream sent`);
    }
    if (signal.aborted) return;
    const key = webKeys.events(this.instance, conversation);
    // Its own connection; if Redis goes away the read fails (and the client reconnects) instead of hanging.
    const reader = this.redis.duplicate({
      connectionName: `${this.instance}-web-events`,
      enableOfflineQueue: true,
      maxRetriesPerRequest: 1,
      commandTimeout: undefined,
    });
    const close = () => reader.disconnect();
    signal.addEventListener('abort', close, { once: true });
    try {
      // "Now" is resolved to a concrete id once, so nothing written between two reads is skipped.
      let cursor = afterId ?? (await this.position(conversation));
      while (!signal.aborted) {
        const reply = await reader.xread('COUNT', 100, 'BLOCK', this.blockMs, 'STREAMS', key, cursor);
        for (const [id, fields] of reply?.[0]?.[1] ?? []) {
          cursor = id;
          const event = decodeEntry(fields);
          if (event) yield { id, event };
        }
      }
    } catch (error) {
      if (!signal.aborted) throw error;
    } finally {
      signal.removeEventListener('abort', close);
      reader.disconnect();
    }
  }
}

/** Entries are written only by `deliver`, already validated; one that does not parse is skipped. */
function decodeEntry(fields: string[]): OutboundEvent | undefined {
  const at = fields.indexOf(WEB_EVENT_FIELD);
  const json = at >= 0 ? fields[at + 1] : undefined;
  if (json === undefined) return undefined;
  try {
    const parsed = OutboundEvent.safeParse(JSON.parse(json));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}
