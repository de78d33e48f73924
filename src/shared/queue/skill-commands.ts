import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { AuditActor } from '../../contracts/audit/events.js';
import { ConversationId } from '../../contracts/conversation/id.js';
import type { Logger } from '../../contracts/log/logger.js';
import { skillCommandKeys } from '../../contracts/redis/keys.js';
import { pushAnswer, serveListRequests } from '../redis/list-requests.js';
import { SkillCommand } from '../stores/skill-control.js';

/**
 * Chat admins' skill commands (`skill enable|disable`, `skills`) go from a gateway to one worker and
 * back, through Redis: the skills live on the workers' disk (the gateway loads no skills store), and
 * whether a skill may be enabled (approved, its files unchanged) is decided there, at that moment.
 * A request waits in a list for whichever worker takes it first; the answer comes back in a list of
 * its own, which the asking gateway blocks on.
 */

export const SkillCommandRequest = z.object({
  id: z.uuid(),
  conversation: ConversationId,
  command: SkillCommand,
  by: AuditActor,
  /** Epoch ms after which the asker has given up: a late worker skips it instead of acting. */
  expiresAt: z.number(),
});
export type SkillCommandRequest = z.infer<typeof SkillCommandRequest>;

const SkillCommandReply = z.object({ text: z.string() });

const { requests: requestsKey, reply: replyKey } = skillCommandKeys;

const ANSWER_WAIT_SECONDS = 15;
const REPLY_TTL_SECONDS = 60;

/** What the chat adapters call: the same answer in words as running the command in place. */
export interface SkillCommands {
  run(conversation: ConversationId, command: SkillCommand, by: AuditActor): Promise<string>;
}

/** The gateway's side: asks a worker and waits for its answer. */
export class SkillCommandClient implements SkillCommands {
  constructor(
    private readonly redis: Redis,
    private readonly instance: string,
    private readonly waitSeconds = ANSWER_WAIT_SECONDS,
  ) {}

  async run(conversation: ConversationId, command: SkillCommand, by: AuditActor): Promise<string> {
    if (command.action === 'invalid') return command.message;
    const request = SkillCommandRequest.parse({
      id: randomUUID(),
      conversation,
      command,
      by,
      expiresAt: Date.now() + this.waitSeconds * 1000,
    });
    // BLPOP holds its connection: one of its own, which queues until connected (the caller's may fail fast).
    const reader = this.redis.duplicate({ enableOfflineQueue: true, maxRetriesPerRequest: 1 });
    reader.on('error', () => undefined);
    try {
      // The list expires too: requests no worker took are stale anyway.
      const key = requestsKey(this.instance);
      await this.redis.multi().lpush(key, JSON.stringify(request)).expire(key, REPLY_TTL_SECONDS).exec();
      const answer = await reader.blpop(replyKey(this.instance, request.id), this.waitSeconds);
      if (!answer) {
        return `No worker answered within ${this.waitSeconds} s (is one running?); nothing was changed.`;
      }
      return SkillCommandReply.parse(JSON.parse(answer[1])).text;
    } finally {
      reader.disconnect();
    }
  }
}

/** The worker's side: takes requests one at a time until stopped, and answers each. */
export function serveSkillCommands(
  redis: Redis,
  instance: string,
  handle: (request: SkillCommandRequest) => Promise<string>,
  logger: Logger,
): { stop(): Promise<void> } {
  const answer = async (raw: string) => {
    const parsed = SkillCommandRequest.safeParse(JSON.parse(raw));
    if (!parsed.success || parsed.data.expiresAt < Date.now()) return;
    const text = await handle(parsed.data).catch(
      (error: unknown) =>
        `The skill command failed: ${error instanceof Error ? error.message : String(error)}`,
    );
    await pushAnswer(redis, replyKey(instance, parsed.data.id), JSON.stringify({ text }), REPLY_TTL_SECONDS);
  };
  return serveListRequests({
    redis,
    key: requestsKey(instance),
    take: answer,
    logger,
    what: 'a skill command',
  });
}
