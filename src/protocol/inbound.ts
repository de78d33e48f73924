import { z } from 'zod';
import { ConversationId } from '../conversation/id.js';

/** Where and how to answer on the platform the message came from. Opaque to the worker. */
export const ReplyRoute = z.record(z.string(), z.union([z.string(), z.number(), z.boolean()]));
export type ReplyRoute = z.infer<typeof ReplyRoute>;

export const InboundFile = z.object({
  name: z.string().min(1).max(255),
  url: z.string().url(),
  size: z.number().int().nonnegative(),
});

/** A user's message, as the gateway hands it to the queue. */
export const InboundMessage = z.object({
  id: z.string().min(1).max(128),
  conversation: ConversationId,
  platform: z.enum(['web', 'slack', 'discord']),
  user: z.object({ id: z.string().min(1).max(128), name: z.string().max(128).optional() }),
  text: z.string().max(100_000),
  receivedAt: z.string().datetime(),
  route: ReplyRoute.default({}),
  files: z.array(InboundFile).max(20).default([]),
});
export type InboundMessage = z.infer<typeof InboundMessage>;
