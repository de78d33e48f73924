import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { AuditActor } from '../../contracts/audit/events.js';
import { ConversationId } from '../../contracts/conversation/id.js';
import type { Logger } from '../../contracts/log/logger.js';
import { hostCommandKeys } from '../../contracts/redis/keys.js';
import { pushAnswer, serveListRequests } from '../redis/list-requests.js';

/**
 * What `sandbot host drain` asks of one host's workers, through Redis (a LIST per host): only a worker
 * beside its engine can make a sandbox's size-capped volumes (loop-mounted images in its disk folder),
 * so the destination's worker does the move, and the source's frees what it leaves behind.
 * - `move`: take the conversation from host `from` into this host, with its files; the answer comes
 *   back in a list of its own, which the asking CLI blocks on. A worker that takes it after
 *   `expiresAt` does not act on it (the asker has taken it back, or is told so).
 * - `free`: the conversation moved away: unmount and delete its images here (only a worker of the host
 *   can). No answer; it waits in the list while the host has no worker.
 */
export const MoveCommand = z.object({
  kind: z.literal('move'),
  id: z.uuid(),
  conversation: ConversationId,
  from: z.string().min(1).max(200),
  to: z.string().min(1).max(200),
  /** Archive bytes one conversation's copy may stream at most. */
  maxBytes: z.number().int().positive(),
  by: AuditActor,
  expiresAt: z.number(),
});
export type MoveCommand = z.infer<typeof MoveCommand>;

export const FreeCommand = z.object({
  kind: z.literal('free'),
  conversation: ConversationId,
  /** The host it moved to (for the log). */
  to: z.string().min(1).max(200),
});
export type FreeCommand = z.infer<typeof FreeCommand>;

export const HostCommand = z.discriminatedUnion('kind', [MoveCommand, FreeCommand]);
export type HostCommand = z.infer<typeof HostCommand>;

/** A move's outcome, in the words the CLI prints. */
export const MoveReply = z.object({ moved: z.boolean(), line: z.string().max(2000) });
export type MoveReply = z.infer<typeof MoveReply>;

/** How long a move request waits for a worker of its host to take it. */
export const TAKE_MS = 30_000;
/** How long a move holds the conversation's lease (no turn starts meanwhile) and may copy for. */
export const MOVE_MS = 10 * 60_000;
const REPLY_TTL_SECONDS = 60;

/**
 * The CLI's side: asks a worker of `host` to move one conversation there; its answer, or why none came.
 * A request no worker took within `takeMs` is taken back (none acts on it later).
 */
export async function askMove(
  redis: Redis,
  instance: string,
  host: string,
  ask: Omit<MoveCommand, 'kind' | 'id' | 'expiresAt'>,
  moveMs = MOVE_MS,
  takeMs = TAKE_MS,
): Promise<MoveReply> {
  const request = MoveCommand.parse({
    ...ask,
    kind: 'move',
    id: randomUUID(),
    expiresAt: Date.now() + takeMs,
  });
  const text = JSON.stringify(request);
  const requests = hostCommandKeys.requests(instance, host);
  const reply = hostCommandKeys.reply(instance, request.id);
  // BLPOP holds its connection: one of its own, without the CLI's command timeout (a copy takes minutes).
  const reader = redis.duplicate({
    enableOfflineQueue: true,
    maxRetriesPerRequest: 1,
    commandTimeout: undefined,
  });
  reader.on('error', () => undefined);
  try {
    await redis.lpush(requests, text);
    let answer = await reader.blpop(reply, Math.max(1, Math.ceil(takeMs / 1000)));
    if (!answer && (await redis.lrem(requests, 1, text)) === 1)
      return {
        moved: false,
        line: `not moved: no worker of ${host} took it within ${Math.round(takeMs / 1000)} s`,
      };
    // Taken: its worker answers within the move's bound.
    answer ??= await reader.blpop(reply, Math.ceil(moveMs / 1000) + 30);
    if (!answer) return { moved: false, line: `not moved: the worker of ${host} did not answer in time` };
    return MoveReply.parse(JSON.parse(answer[1]));
  } finally {
    reader.disconnect();
  }
}

/** A worker's side, after a move: the source host's workers free what the conversation left there. */
export async function sendFree(redis: Redis, instance: string, host: string, command: FreeCommand) {
  await redis.lpush(hostCommandKeys.requests(instance, host), JSON.stringify(FreeCommand.parse(command)));
}

export interface HostHandlers {
  /** `signal`: the worker stops (a copy in flight is cut, the conversation left where it was). */
  move(command: MoveCommand, signal: AbortSignal): Promise<MoveReply>;
  free(command: FreeCommand): Promise<void>;
}

/** A worker's side: takes its host's commands one at a time until stopped; answers each move. */
export function serveHostCommands(
  redis: Redis,
  instance: string,
  host: string,
  handlers: HostHandlers,
  logger: Logger,
): { stop(): Promise<void> } {
  const stopping = new AbortController();
  const take = async (raw: string) => {
    const parsed = HostCommand.safeParse(JSON.parse(raw));
    if (!parsed.success) return logger.warn({ raw: raw.slice(0, 200) }, 'not a host command: dropped');
    const command = parsed.data;
    if (command.kind === 'free') return handlers.free(command);
    // Taken too late, it is not acted on; said all the same, in case its asker still waits.
    const late: MoveReply = { moved: false, line: 'not moved: taken after its asker stopped waiting' };
    const reply = await (command.expiresAt < Date.now()
      ? Promise.resolve(late)
      : handlers.move(command, stopping.signal)
    ).catch(
      (error: unknown): MoveReply => ({
        moved: false,
        line: `not moved: ${error instanceof Error ? error.message : String(error)}`,
      }),
    );
    const said = JSON.stringify({ ...reply, line: reply.line.slice(0, 2000) });
    await pushAnswer(redis, hostCommandKeys.reply(instance, command.id), said, REPLY_TTL_SECONDS);
  };
  const served = serveListRequests({
    redis,
    key: hostCommandKeys.requests(instance, host),
    take,
    logger,
    what: 'a host command',
  });
  return {
    async stop() {
      stopping.abort();
      // A move in flight is cut and its copy discarded, its lease let go (but not waited on for long).
      await Promise.race([served.stop(), new Promise((resolve) => setTimeout(resolve, 15_000).unref())]);
    },
  };
}
