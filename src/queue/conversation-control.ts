import type { Redis } from 'ioredis';
import { z } from 'zod';
import { ConversationId } from '../conversation/id.js';
import type { ConversationStore } from './conversation-store.js';
import { instanceKeys } from './keys.js';

/** A control message from a gateway to the workers, on a Redis channel. */
export const ControlMessage = z.object({
  action: z.literal('stop'),
  conversation: ConversationId,
  by: z.string().max(256),
});
export type ControlMessage = z.infer<typeof ControlMessage>;

export const controlChannel = (instance: string) => `${instance}:control`;

export interface ConversationStatus {
  conversation: ConversationId;
  /** A worker is running a turn of this conversation now. */
  turnRunning: boolean;
  /** Messages waiting for a turn (including the running one's). */
  pending: number;
  /** When the last turn finished, if any (ISO time). */
  lastTurnAt?: string;
}

/**
 * What chat commands (`status`, `stop`) ask of the queue, from any gateway. `reset` is not here: it is
 * submitted as a message with `command: 'reset'`, so it runs in order with the conversation's messages.
 */
export class ConversationControl {
  constructor(
    private readonly redis: Redis,
    private readonly store: ConversationStore,
    private readonly instance: string,
  ) {}

  async status(conversation: ConversationId): Promise<ConversationStatus> {
    const [holder, pending, last] = await Promise.all([
      this.store.leaseHolder(conversation),
      this.store.pendingCount(conversation),
      this.redis.zscore(instanceKeys(this.instance).lastUsed, conversation),
    ]);
    return {
      conversation,
      turnRunning: holder !== null,
      pending,
      ...(last === null ? {} : { lastTurnAt: new Date(Number(last)).toISOString() }),
    };
  }

  /** Asks the worker running this conversation to cancel its turn. False when no turn is running. */
  async stop(conversation: ConversationId, by: string): Promise<boolean> {
    if ((await this.store.leaseHolder(conversation)) === null) return false;
    const message: ControlMessage = { action: 'stop', conversation, by };
    await this.redis.publish(controlChannel(this.instance), JSON.stringify(message));
    return true;
  }
}
