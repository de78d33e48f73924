import { type ConversationId, conversationKey } from '../conversation/id.js';

/** Every Redis key sandbot writes, in one place, namespaced by the instance. */
export function conversationKeys(instance: string, conversation: ConversationId) {
  const base = `${instance}:conv:${conversationKey(conversation)}`;
  return {
    /** Last sequence number handed out for this conversation. */
    seq: `${base}:seq`,
    /** Messages not yet answered: ZSET score=seq member=messageId. */
    pending: `${base}:pending`,
    /** Message bodies by id (HASH). */
    messages: `${base}:messages`,
    /** Last sequence number whose turn finished. */
    done: `${base}:done`,
    /** The turn being run (JSON), kept until it finishes so a takeover reruns exactly it. */
    inflight: `${base}:inflight`,
    /** Which worker runs this conversation now; expires when that worker stops renewing it. */
    lease: `${base}:lease`,
  };
}

export const instanceKeys = (instance: string) => ({
  /** Conversations that may have work left: the recovery sweep looks here. */
  active: `${instance}:active`,
  /** Last turn end per conversation (ZSET score=ms), for idle stops. */
  lastUsed: `${instance}:sandbox:last-used`,
});

/** BullMQ's own key prefix; queue names are fixed. */
export const bullPrefix = (instance: string) => `${instance}:bull`;
export const INBOUND_QUEUE = 'inbound';
export const OUTBOUND_QUEUE = 'outbound';
