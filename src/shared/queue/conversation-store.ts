import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { ConversationId } from '../../contracts/conversation/id.js';
import { InboundMessage } from '../../contracts/protocol/inbound.js';
import { conversationKeys, instanceKeys, messageSeenKey } from '../../contracts/redis/keys.js';
import {
  COMPLETE_TURN,
  NEXT_TURN,
  RELEASE,
  RENEW,
  SUBMIT,
  YIELD_TURN,
} from '../../contracts/redis/scripts.js';

const StoredTurn = z.object({
  turnId: z.string(),
  fromSeq: z.number().int(),
  toSeq: z.number().int(),
  // cjson encodes an empty table as {} rather than [].
  messages: z.union([z.array(z.string()), z.object({}).transform(() => [] as string[])]),
  /** Set when this holder took the turn over from a runner that did not finish it. */
  takenOverFrom: z.string().optional(),
});
/** Another runner's unfinished turn: wait this long (it may still finish it), then ask again. */
const TakeoverWait = z.object({ wait: z.number().nonnegative() });

export interface Turn {
  turnId: string;
  conversation: ConversationId;
  fromSeq: number;
  toSeq: number;
  messages: InboundMessage[];
  /** The lease token of the runner this turn was taken over from (it started the turn, never finished). */
  takenOverFrom?: string;
}

type Script = (...args: (string | number)[]) => Promise<unknown>;
type Scripted = Redis & {
  sbSubmit: Script;
  sbRenew: Script;
  sbNextTurn: Script;
  sbComplete: Script;
  sbRelease: Script;
  sbYieldTurn: Script;
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
      sbRenew: [2, RENEW],
      sbNextTurn: [7, NEXT_TURN],
      sbComplete: [7, COMPLETE_TURN],
      sbRelease: [5, RELEASE],
      sbYieldTurn: [2, YIELD_TURN],
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
    const k = this.keys(conversation);
    return Number(await this.redis.sbRenew(k.lease, k.runner, token, ttlMs)) === 1;
  }

  async leaseHolder(conversation: ConversationId): Promise<string | null> {
    return this.redis.get(this.keys(conversation).lease);
  }

  /**
   * The turn to run now; null when nothing is pending; `{ wait }` while another runner's unfinished turn
   * is in its takeover grace (`graceMs`, see NEXT_TURN).
   */
  async nextTurn(
    conversation: ConversationId,
    token: string,
    maxBatch: number,
    graceMs: number,
  ): Promise<Turn | { wait: number } | null> {
    const k = this.keys(conversation);
    const raw = await this.redis.sbNextTurn(
      ...[k.lease, k.inflight, k.pending, k.done, k.messages, k.runner, k.claim],
      ...[token, maxBatch, conversation, graceMs],
    );
    if (raw === null || raw === undefined) return null;
    const value: unknown = JSON.parse(String(raw));
    const wait = TakeoverWait.safeParse(value);
    if (wait.success) return wait.data;
    const stored = StoredTurn.parse(value);
    const messages = stored.messages.map((body) => InboundMessage.parse(JSON.parse(body)));
    return {
      turnId: stored.turnId,
      conversation,
      fromSeq: stored.fromSeq,
      toSeq: stored.toSeq,
      messages,
      ...(stored.takenOverFrom ? { takenOverFrom: stored.takenOverFrom } : {}),
    };
  }

  /** Records the turn finished; false when this runner no longer owns it (it was taken over). */
  async complete(turn: Turn, token: string): Promise<boolean> {
    const k = this.keys(turn.conversation);
    const keys = [k.lease, k.inflight, k.pending, k.done, k.messages, k.runner, k.claim];
    return Number(await this.redis.sbComplete(...keys, token, turn.toSeq)) === 1;
  }

  /** Gives up the lease and the turn in flight unfinished, for the next holder to run at once. */
  async yieldTurn(conversation: ConversationId, token: string): Promise<void> {
    const k = this.keys(conversation);
    await this.redis.sbYieldTurn(k.lease, k.runner, token);
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

  /** The messages waiting for a turn, oldest first (at most `limit`); unreadable ones left out. */
  async pendingMessages(conversation: ConversationId, limit = 100): Promise<InboundMessage[]> {
    const k = this.keys(conversation);
    const done = Number((await this.redis.get(k.done)) ?? 0);
    const ids = await this.redis.zrangebyscore(k.pending, `(${done}`, '+inf', 'LIMIT', 0, limit);
    if (ids.length === 0) return [];
    const bodies = await this.redis.hmget(k.messages, ...ids);
    return bodies.flatMap((body) => {
      const parsed = body ? InboundMessage.safeParse(JSON.parse(body)) : undefined;
      return parsed?.success ? [parsed.data] : [];
    });
  }

  async pendingCount(conversation: ConversationId): Promise<number> {
    const k = this.keys(conversation);
    const done = Number((await this.redis.get(k.done)) ?? 0);
    return this.redis.zcount(k.pending, `(${done}`, '+inf');
  }
}
