import type { Redis } from 'ioredis';
import type { Logger } from '../contracts/log/logger.js';
import { OutboundEvent } from '../contracts/protocol/outbound.js';
import { bullPrefix, OUTBOUND_QUEUE } from '../contracts/redis/keys.js';
import { type Job, UnrecoverableError, Worker } from '../shared/redis/bullmq.js';
import type { ChatAdapter, Platform } from './chat-adapter.js';

/**
 * Delivers outbound events to the adapter of their platform. A failed delivery is retried by the queue
 * (with backoff), so a platform that is down for a while delays replies rather than losing them.
 * Concurrency 1 keeps a conversation's progress and reply in the order the worker emitted them.
 */
export class OutboundDispatcher {
  private worker?: Worker;

  constructor(
    private readonly connection: Redis,
    private readonly instance: string,
    private readonly adapters: ReadonlyMap<Platform, ChatAdapter>,
    private readonly logger: Logger,
  ) {}

  start(): void {
    this.worker = new Worker(OUTBOUND_QUEUE, (job) => this.deliver(job), {
      connection: this.connection,
      prefix: bullPrefix(this.instance),
      concurrency: 1,
    });
    this.worker.on('failed', (job, error) =>
      this.logger.warn(
        { jobId: job?.id, attempts: job?.attemptsMade, err: error },
        'outbound delivery failed',
      ),
    );
    this.worker.on('error', (error) => this.logger.warn({ err: error }, 'outbound worker error'));
  }

  async deliver(job: Job): Promise<void> {
    const parsed = OutboundEvent.safeParse(job.data);
    if (!parsed.success) {
      throw new UnrecoverableError(
        `outbound event ${job.id} is malformed: ${parsed.error.issues[0]?.message}`,
      );
    }
    const adapter = this.adapters.get(parsed.data.platform);
    if (!adapter) {
      throw new UnrecoverableError(
        `no ${parsed.data.platform} adapter runs on this gateway for event ${parsed.data.id}`,
      );
    }
    await adapter.deliver(parsed.data);
  }

  async stop(): Promise<void> {
    await this.worker?.close();
  }
}
