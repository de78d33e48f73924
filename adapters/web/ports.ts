import type { ConversationId } from '../../src/contracts/conversation/id.js';
import type { InboundMessage } from '../../src/contracts/protocol/inbound.js';
import type { OutboundEvent } from '../../src/contracts/protocol/outbound.js';
import type { RateLimiter } from '../../src/gateway/rate-limiter.js';
import type { Schedules } from '../../src/shared/schedules/schedules.js';
import type { ApprovalStore } from '../../src/shared/stores/approval-store.js';

/** Hands a user's message to the inbound queue. Rejects when the queue cannot take it (Redis down). */
export interface InboundSubmitter {
  submit(message: InboundMessage): Promise<void>;
}

/** One outbound event as stored in a conversation's web event stream. */
export interface WebStreamEntry {
  /** The Redis stream id ("<ms>-<seq>"): the SSE event id a client resumes from. */
  id: string;
  event: OutboundEvent;
}

/** Reads a conversation's web events, live. Implemented by WebEventStream (event-stream.ts). */
export interface WebEventSubscriber {
  /** The id of the newest stored event ("0-0" if none): "now", fixed before a subscriber starts. */
  position(conversation: ConversationId): Promise<string>;
  /** Events after `afterId` (or after "now" if omitted), until `signal` aborts. */
  subscribe(
    conversation: ConversationId,
    afterId: string | undefined,
    signal: AbortSignal,
  ): AsyncIterable<WebStreamEntry>;
}

/** What the HTTP server needs to serve the web chat and its API. */
export interface WebAdapterDeps {
  submitter: InboundSubmitter;
  events: WebEventSubscriber;
  /** The gateway's rate limits (absent: none), answered with 429 and Retry-After. */
  limits?: Pick<RateLimiter, 'admit' | 'openStream'>;
  /** The schedules API (absent: not served). */
  schedules?: Schedules;
  /** Approval requests the web chat's buttons decide (absent: not served). */
  approvals?: Pick<ApprovalStore, 'get' | 'decide'>;
}
