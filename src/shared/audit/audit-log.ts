import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { type AuditBody, type AuditInput, parseAuditInput } from '../../contracts/audit/events.js';
import type { Config } from '../../contracts/config/schema.js';
import type { ConversationId } from '../../contracts/conversation/id.js';
import type { Logger } from '../../contracts/log/logger.js';
import { sandbotMetrics } from '../metrics.js';
import { AuditStore } from './audit-store.js';
import { boundData } from './bound.js';
import { openAuditStorage } from './open-storage.js';
import { expireOldFiles } from './retention.js';
import type { AuditStorage } from './storage.js';

/** What code that records events needs: `record` never throws and never rejects. */
export interface AuditRecorder {
  /** Resolves once the event is queued in Redis (in order), or when queuing it failed (logged). */
  record(input: AuditInput): Promise<void>;
  /** Whether message and model content may be recorded (SANDBOT_AUDIT_CONTENT). */
  readonly content: boolean;
}

export type AuditSettings = Pick<
  Config,
  | 'SANDBOT_INSTANCE'
  | 'SANDBOT_AUDIT_DIR'
  | 'SANDBOT_DATABASE_URL'
  | 'SANDBOT_AUDIT_CONTENT'
  | 'SANDBOT_AUDIT_RETENTION_DAYS'
  | 'SANDBOT_AUDIT_STREAM_MAX'
>;

/** Events queued by this process but not yet in Redis; beyond this (Redis down) new ones are dropped. */
const MAX_BACKLOG = 10_000;
const SWEEP_MS = 5_000;
const RETENTION_MS = 3_600_000;
/** How long `stop` waits for queued events to be written (Redis may be gone). */
const STOP_WAIT_MS = 5_000;

/**
 * The audit log of one process: queues events in Redis and writes them to the conversation's file or
 * to PostgreSQL (see AuditStore for how several processes share one chain). Recording is fire-and-forget: a failure
 * is logged and counted, never thrown into the turn or request that recorded it.
 */
export class AuditLog implements AuditRecorder {
  readonly content: boolean;
  /** Where sealed events are kept: the files, or PostgreSQL with SANDBOT_DATABASE_URL. */
  readonly journal: AuditStorage;
  readonly store: AuditStore;
  private backlog = 0;
  private readonly flushing = new Map<ConversationId, { again: boolean; done: Promise<void> }>();
  private readonly inflight = new Set<Promise<unknown>>();
  private timers: NodeJS.Timeout[] = [];

  constructor(
    redis: Redis,
    private readonly settings: AuditSettings,
    private readonly logger: Logger,
  ) {
    this.content = settings.SANDBOT_AUDIT_CONTENT;
    this.journal = openAuditStorage(settings);
    this.store = new AuditStore(
      redis,
      settings.SANDBOT_INSTANCE,
      this.journal,
      settings.SANDBOT_AUDIT_STREAM_MAX,
    );
  }

  record(input: AuditInput): Promise<void> {
    try {
      const parsed = parseAuditInput(input);
      if (!parsed.ok) {
        this.failed('invalid', new Error(parsed.error), input);
        return Promise.resolve();
      }
      if (this.backlog >= MAX_BACKLOG) {
        this.failed('backlog', new Error(`more than ${MAX_BACKLOG} events waiting for Redis`), input);
        return Promise.resolve();
      }
      const body: AuditBody = {
        id: randomUUID(),
        time: new Date().toISOString(),
        ...parsed.value,
        data: boundData(parsed.value.data),
      };
      this.backlog += 1;
      const queued = this.store.push(body).then(
        () => this.scheduleFlush(body.conversation),
        (error: unknown) => this.failed('queue', error, input),
      );
      return this.track(queued.finally(() => (this.backlog -= 1)));
    } catch (error) {
      this.failed('invalid', error, input);
      return Promise.resolve();
    }
  }

  /** Flushes every conversation with queued events now and then, and applies the retention. */
  start(): void {
    const every = (ms: number, task: () => Promise<unknown>) => {
      const run = () =>
        void this.track(task().catch((error) => this.logger.warn({ err: error }, 'audit task failed')));
      const timer = setInterval(run, ms);
      timer.unref();
      this.timers.push(timer);
      return run;
    };
    every(SWEEP_MS, () => this.sweep());
    every(RETENTION_MS, () => this.applyRetention())();
  }

  async sweep(): Promise<void> {
    for (const conversation of await this.store.dirtyConversations()) this.scheduleFlush(conversation);
  }

  async applyRetention(): Promise<number> {
    const maxAgeMs = this.settings.SANDBOT_AUDIT_RETENTION_DAYS * 86_400_000;
    const removed = await expireOldFiles(this.journal, this.store, maxAgeMs);
    if (removed > 0) this.logger.info({ removed }, 'audit files past their retention removed');
    return removed;
  }

  /** Waits until everything recorded so far by this process is queued and written. */
  async settle(): Promise<void> {
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
  }

  async stop(): Promise<void> {
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), STOP_WAIT_MS);
    });
    const result = await Promise.race([this.settle(), late]).finally(() => clearTimeout(timer));
    if (result === 'late') {
      this.logger.warn(
        'audit events still unwritten at stop (those already queued in Redis are written by the next writer)',
      );
    }
    await this.journal.close().catch((error) => this.logger.warn({ err: error }, 'audit storage not closed'));
  }

  /** One flush per conversation at a time in this process; a request during one runs it again after. */
  private scheduleFlush(conversation: ConversationId): void {
    const running = this.flushing.get(conversation);
    if (running) {
      running.again = true;
      return;
    }
    const state = { again: false, done: Promise.resolve() };
    state.done = (async () => {
      do {
        state.again = false;
        try {
          await this.store.flush(conversation);
        } catch (error) {
          this.failed('write', error, { conversation });
          return;
        }
      } while (state.again);
    })().finally(() => this.flushing.delete(conversation));
    this.flushing.set(conversation, state);
    void this.track(state.done);
  }

  private track<T>(promise: Promise<T>): Promise<void> {
    const settled = promise.then(
      () => undefined,
      () => undefined,
    );
    this.inflight.add(settled);
    void settled.finally(() => this.inflight.delete(settled));
    return settled;
  }

  private failed(stage: string, error: unknown, input: unknown): void {
    sandbotMetrics().auditFailures.inc({ stage });
    const { conversation, kind } = (input ?? {}) as { conversation?: string; kind?: string };
    // A write that failed (storage down, or another writer's seq in PostgreSQL) left its events queued.
    const what =
      stage === 'write' ? 'audit events not written yet (still queued in Redis)' : 'audit event not recorded';
    this.logger.error({ err: error, stage, conversation, kind }, what);
  }
}
