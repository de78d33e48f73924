import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { WebSessionName, webConversationId } from '../../src/contracts/conversation/id.js';
import type { InboundMessage } from '../../src/contracts/protocol/inbound.js';

/** Who writes, as a web client names them (also for schedules). */
export const userField = () =>
  z
    .string({ error: requiredString })
    .trim()
    .min(1, 'must not be empty')
    .max(128, 'must be at most 128 characters');

/** What a message (or a scheduled task) says, up to SANDBOT_MAX_MESSAGE_CHARS. */
export const textField = (maxChars: number) =>
  z
    .string({ error: requiredString })
    .refine((t) => t.trim().length > 0, 'must not be empty')
    .refine((t) => t.length <= maxChars, `must be at most ${maxChars} characters`);

/** The body of `POST /api/messages`. The single source of truth for what a web client may send. */
export function postMessageBody(maxChars: number) {
  return z.strictObject(
    {
      conversation: z.string({ error: requiredString }).pipe(WebSessionName),
      user: userField(),
      text: textField(maxChars),
    },
    { error: requiredObject },
  );
}
export type PostMessageBody = z.infer<ReturnType<typeof postMessageBody>>;

function requiredString(issue: { input?: unknown }) {
  return issue.input === undefined ? 'is required' : 'must be a string';
}

function requiredObject(issue: { code?: string; keys?: string[]; input?: unknown }) {
  if (issue.code === 'unrecognized_keys') {
    return `unknown field${issue.keys?.length === 1 ? '' : 's'} ${issue.keys?.map((k) => `"${k}"`).join(', ')}: send only conversation, user and text`;
  }
  return 'must be a JSON object with conversation, user and text';
}

/** One sentence per problem, each naming the field, e.g. `text: must be at most 8000 characters`. */
export function describeIssues(error: z.ZodError, root = 'body'): string {
  return error.issues
    .map((issue) => {
      const field = issue.path.map(String).join('.') || root;
      // Shared schemas (WebSessionName) already name their field in the message.
      return issue.message.startsWith(`${field} `) ? issue.message : `${field}: ${issue.message}`;
    })
    .join('; ');
}

/** The queue's view of a web chat message (checked by the queue as it goes in). */
export function toInboundMessage(
  body: PostMessageBody,
  now: Date = new Date(),
  id: string = randomUUID(),
): InboundMessage {
  return {
    id,
    conversation: webConversationId(body.conversation),
    platform: 'web',
    user: { id: body.user, name: body.user },
    text: body.text,
    receivedAt: now.toISOString(),
    route: {},
    files: [],
  };
}
