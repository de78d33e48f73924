import type { Redis } from 'ioredis';
import { z } from 'zod';
import { messageReceived } from '../../contracts/audit/message-event.js';
import { ConversationId, shortHash } from '../../contracts/conversation/id.js';
import { InboundMessage } from '../../contracts/protocol/inbound.js';
import { bullPrefix, INBOUND_QUEUE } from '../../contracts/redis/keys.js';
import type { AuditRecorder } from '../audit/audit-log.js';
import { sandbotMetrics } from '../metrics.js';
import { Queue } from '../redis/bullmq.js';
import { ConversationOwners } from '../stores/conversation-owner.js';
import type { ConversationStore } from './conversation-store.js';
import { TaskIntake } from './task-intake.js';

/**
 * A job on the inbound queue says "this conversation has work"; the worker takes the messages from the
 * conversation's store in order (validated there, as they leave Redis), so the job carries no message.
 * `kick` is the recovery sweep's re-announcement.
 */
export const InboundJob = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('message'), conversation: ConversationId, seq: z.number().int() }),
  z.object({ kind: z.literal('kick'), conversation: ConversationId }),
]);
export type InboundJob = z.infer<typeof InboundJob>;

export type SubmitResult = { status: 'queued'; seq: number } | { status: 'duplicate' };

/**
 * The gateway's side of the inbound queue. A message is first recorded in its conversation's ordered
 * store (atomically, with its sequence number), then announced with a job; a lost announcement is
 * recovered by the workers' sweep, so an accepted message is never lost.
 */
export class InboundQueue {
  readonly queue: Queue<InboundJob>;
  /** Group-channel threads become tasks here (src/tasks). */
  readonly tasks: TaskIntake;
  private readonly owners: ConversationOwners;

  constructor(
    connection: Redis,
    private readonly store: ConversationStore,
    instance: string,
    /** Records `message.received`; absent: not recorded. */
    private readonly audit?: AuditRecorder,
  ) {
    this.queue = new Queue<InboundJob>(INBOUND_QUEUE, { connection, prefix: bullPrefix(instance) });
    this.tasks = new TaskIntake(connection, instance, audit);
    this.owners = new ConversationOwners(connection, instance);
  }

  /** The one check of a message on its way in: adapters hand over what they built, unparsed. */
  async submit(input: InboundMessage): Promise<SubmitResult> {
    const message = InboundMessage.parse(input);
    // Before the store: once there, a worker may start the turn, and the log must show the message first.
    await this.audit?.record(messageReceived(message, this.audit.content));
    // The first writer owns the conversation; a command (a reset, an admin's `run`) claims nothing.
    if (!message.command) {
      await this.owners.claim(message.conversation, `${message.platform}:${message.user.id}`);
    }
    await this.tasks.before(message);
    const seq = await this.store.submit(message);
    if (seq === null) return { status: 'duplicate' };
    await this.tasks.accepted(message);
    sandbotMetrics().messagesIn.inc({ platform: message.platform, kind: message.command ?? 'message' });
    await this.queue.add(
      'message',
      { kind: 'message', conversation: message.conversation, seq },
      {
        jobId: `m-${shortHash(`${message.conversation}\n${message.id}`)}`,
        removeOnComplete: { age: 3600, count: 10_000 },
        removeOnFail: { age: 7 * 86_400 },
        attempts: 5,
        backoff: { type: 'exponential', delay: 500 },
      },
    );
    return { status: 'queued', seq };
  }

  /** Re-announces a conversation whose worker died (the sweep); de-duplicated per period. */
  async kick(conversation: ConversationId, period: number): Promise<void> {
    await this.queue.add(
      'kick',
      { kind: 'kick', conversation },
      {
        jobId: `k-${shortHash(conversation)}-${period}`,
        removeOnComplete: true,
        removeOnFail: { age: 86_400 },
      },
    );
  }

  close(): Promise<void> {
    return this.queue.close();
  }
}
