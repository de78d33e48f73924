import { z } from 'zod';
import { Approval } from '../approvals/approval.js';
import { ConversationId } from '../conversation/id.js';
import { FileRef, InboundMessage, ReplyRoute } from './inbound.js';

const base = {
  /** Idempotency key: a retried turn emits the same ids, and delivery skips ids already delivered. */
  id: z.string().min(1).max(300),
  conversation: ConversationId,
  platform: z.enum(['web', 'slack', 'discord']),
  route: ReplyRoute.default({}),
  turnId: z.string().max(300).optional(),
};

/** What the worker sends back to the user, through the gateway's adapter for the platform. */
export const OutboundEvent = z.discriminatedUnion('type', [
  z.object({ ...base, type: z.literal('progress'), text: z.string() }),
  z.object({
    ...base,
    type: z.literal('reply'),
    text: z.string(),
    files: z.array(FileRef).max(50).optional(),
  }),
  z.object({ ...base, type: z.literal('error'), message: z.string() }),
  /**
   * A scheduled run that gets a thread of its own (Slack, Discord): the gateway posts `title` in the
   * channel, opens a thread on it, and submits `run` there (only the gateway can make threads).
   */
  z.object({ ...base, type: z.literal('thread_start'), title: z.string().max(500), run: InboundMessage }),
  /**
   * An approval card (request_access): posted when pending, edited in place on each later event for the
   * same approval id (decided, expired). Adapters render it with approval-card.ts.
   */
  z.object({ ...base, type: z.literal('approval'), approval: Approval }),
]);
export type OutboundEvent = z.infer<typeof OutboundEvent>;
