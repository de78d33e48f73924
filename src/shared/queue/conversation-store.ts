import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { ConversationId } from '../../contracts/conversation/id.js';
import { InboundMessage } from '../../contracts/protocol/inbound.js';
import { conversationKeys, instanceKeys, messageSeenKey } from '../../contracts/redis/keys.js';
import { COMPLETE_TURN, NEXT_TURN, RELEASE, RENEW, SUBMIT } from '../../contracts/redis/scripts.js';

const StoredTurn = z.object({
  turnId: z.string(),
  fromSeq: z.number().int(),
  toSeq: z.number().int(),
  // cjson encodes an empty table as {} rather than [].
  messages: z.union([z.array(z.string()), z.object({}).transform(() => [] as string[])]),
});

export interface Turn {
  turnId: string;
  conversation: ConversationId;
  fromSeq: number;
  toSeq: number;
  messages: InboundMessage[];
}

type Script = (...args: (string | number)[]) => Promise<unknown>;
type Scripted = Redis & {
  sbSubmit: Script;
  sbRenew: Script;
  sbNextTurn: Script;
  sbComplete: Script;
  sbRelease: Script;
};

/**
 * Per-conversation state in Redis: pending messages in arrival order, the turn in flight, and the
 * lease that lets exactly one worker run the conversation at a time.
 */
export class ConversationStore {
  private readonly redis: Scripted;

  constructor(
    redis: Redis,
    private readonly instance: string,
    private readonly dedupeSeconds = 86_400,
  ) {
    const scripts = {
      sbSubmit: [5, SUBMIT],
      sbRenew: [1, RENEW],
      sbNextTurn: [5, NEXT_TURN],
      sbComplete: [5, COMPLETE_TURN],
      sbRelease: [5, RELEASE],
    } as const;
    for (const [name, [numberOfKeys, lua]] of Object.entries(scripts)) {
      redis.defineCommand(name, { numberOfKeys, lua });
    }
    this.redis = redis as Scripted;
  }

  private keys(conversation: ConversationId) {
    return conversationKeys(this.instance, conversation);
  }

  /** Records a message as pending. Returns its sequence number, or null when it was seen before. */
  async submit(message: InboundMessage): Promise<number | null> {
    const k = this.keys(message.conversation);
    const seen = messageSeenKey(this.instance, message.conversation, message.id);
    const active = instanceKeys(this.instance).active;
    const seq = Number(
      await this.redis.sbSubmit(
        k.seq,
        k.pending,
        k.messages,
        active,
        seen,
        message.id,
        JSON.stringify(message),
        message.conversation,
        this.dedupeSeconds,
      ),
    );
    return seq < 0 ? null : seq;
  }

  async acquire(conversation: ConversationId, token: string, ttlMs: number): Promise<boolean> {
    return (await this.redis.set(this.keys(conversation).lease, token, 'PX', ttlMs, 'NX')) === 'OK';
  }

  async renew(conversation: ConversationId, token: string, ttlMs: number): Promise<boolean> {
    return Number(await this.redis.sbRenew(this.keys(conversation).lease, token, ttlMs)) === 1;
  }

  async leaseHolder(conversation: ConversationId): Promise<string | null> {
    return this.redis.get(this.keys(conversation).lease);
  }

  /** The turn to run now, or null when nothing is pending. Messages that fail to parse are dropped and named. */
  async nextTurn(conversation: ConversationId, token: string, maxBatch: number): Promise<Turn | null> {
    const k = this.keys(conversation);
    const raw = await this.redis.sbNextTurn(
      k.lease,
      k.inflight,
      k.pending,
      k.done,
      k.messages,
      token,
      maxBatch,
      conversation,
    );
    if (raw === null || raw === undefined) return null;
    const stored = StoredTurn.parse(JSON.parse(String(raw)));
    const messages = stored.messages.map((body) => InboundMessage.parse(JSON.parse(body)));
    return { turnId: stored.turnId, conversation, fromSeq: stored.fromSeq, toSeq: stored.toSeq, messages };
  }

  async complete(turn: Turn, token: string): Promise<boolean> {
    const k = this.keys(turn.conversation);
    return (
      Number(
        await this.redis.sbComplete(k.lease, k.inflight, k.pending, k.done, k.messages, token, turn.toSeq),
      ) === 1
    );
  }

  /** Returns 'released', 'more' (work arrived: keep going) or 'lost' (someone else holds it now). */
  async release(conversation: ConversationId, token: string): Promise<'released' | 'more' | 'lost'> {
    const k = this.keys(conversation);
    const active = instanceKeys(this.instance).active;
    const r = Number(
      await this.redis.sbRelease(k.lease, k.pending, k.done, k.inflight, active, token, conversation),
    );
    return r === 1 ? 'released' : r === 0 ? 'more' : 'lost';
  }

  /** Conversations that may still have work (for the recovery sweep). */
  async activeConversations(): Promise<ConversationId[]> {
    return (await this.redis.smembers(instanceKeys(this.instance).active)) as ConversationId[];
  }

  async pendingCount(conversation: ConversationId): Promise<number> {
    const k = this.keys(conversation);
    const done = Number((await this.redis.get(k.done)) ?? 0);
    return this.redis.zcount(k.pending, `(${done}`, '+inf');
  }
}
