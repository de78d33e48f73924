import { z } from 'zod';
import { ConversationId } from '../conversation/id.js';

/** Where and how to answer on the platform the message came from. Opaque to the worker. */
export const ReplyRoute = z.record(z.string(), z.union([z.string(), z.number(), z.boolean()]));
export type ReplyRoute = z.infer<typeof ReplyRoute>;

/**
 * A file travelling with a message or a reply. Its bytes sit in the blob store (Redis, size-capped,
 * expiring); the gateway downloads attachments with the platform's token, so the worker never needs it.
 */
export const FileRef = z.object({
  name: z
    .string()
    .min(1)
    .max(255)
    .regex(/^[^/\\\0]+$/, 'a file name without slashes')
    .refine((n) => n !== '.' && n !== '..', 'a file name, not . or ..'),
  size: z.number().int().nonnegative(),
  blobKey: z.string().min(1).max(200),
});
export type FileRef = z.infer<typeof FileRef>;

/** A user's message, as the gateway hands it to the queue. */
export const InboundMessage = z.object({
  id: z.string().min(1).max(128),
  conversation: ConversationId,
  platform: z.enum(['web', 'slack', 'discord']),
  user: z.object({ id: z.string().min(1).max(128), name: z.string().max(128).optional() }),
  text: z.string().max(100_000),
  receivedAt: z.string().datetime(),
  route: ReplyRoute.default({}),
  files: z.array(FileRef).max(20).default([]),
  /**
   * A conversation command, run in order with the messages: `reset` wipes workspace and history; `run`
   * runs `text` as a shell command in the sandbox, without the model; `done` closes the task (and wipes
   * it when the channel's tasks are ephemeral).
   */
  command: z.enum(['reset', 'run', 'done']).optional(),
  /** Set when a schedule sent it (its id, and the occurrence in ms): marked so in chat, its run recorded. */
  schedule: z.object({ id: z.string().max(20), occurrence: z.number().int().nonnegative() }).optional(),
});
export type InboundMessage = z.infer<typeof InboundMessage>;
