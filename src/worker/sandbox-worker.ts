import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import type { SandboxDriver } from '../../sandbox/host/driver/types.js';
import type { ConversationId } from '../contracts/conversation/id.js';
import { bullPrefix, INBOUND_QUEUE, instanceKeys } from '../contracts/redis/keys.js';
import type { AuditRecorder } from '../shared/audit/audit-log.js';
import type { ConversationStore, Turn } from '../shared/queue/conversation-store.js';
import type { InboundQueue } from '../shared/queue/inbound-queue.js';
import { InboundJob } from '../shared/queue/inbound-queue.js';
import { type Job, UnrecoverableError, Worker } from '../shared/redis/bullmq.js';
import { type Quarantine, quarantineNotice } from '../shared/stores/quarantine.js';
import type { EgressRecord } from './egress/proxy.js';
import type { HostGate } from './hosts/host-gate.js';
import { runCommand } from './run-command.js';
import { type CapacityDeps, SandboxCapacity } from './sandboxes/sandbox-capacity.js';
import { VolumeRetention } from './sandboxes/volume-retention.js';
import type { TaskLimits } from './tasks/fairness.js';
import { closeTask } from './tasks/task-close.js';
import { TaskGate } from './tasks/task-gate.js';
import { type TurnEvent, takeOver } from './turn/takeover.js';
import { errorEvent, replyEvent } from './turn/turn-events.js';
import { planSegments } from './turn/turn-plan.js';
import { runTurn, type TurnOutcome, type TurnRunnerDeps } from './turn/turn-runner.js';
import { TurnEnforcement } from './turn-enforcement.js';

export interface SandboxWorkerDeps extends TurnRunnerDeps {
  connection: Redis;
  store: ConversationStore;
  inbound: InboundQueue;
  driver: SandboxDriver;
  quarantine: Quarantine;
  audit?: AuditRecorder;
  /** A conversation's audit events (on disk, then still queued), for what a taken-over turn had started. */
  readAudit?: (conversation: ConversationId) => Promise<TurnEvent[]>;
  /** The warm pool, when SANDBOX_WARM_POOL is set (its sandboxes count toward SANDBOX_MAX_LIVE). */
  pool?: CapacityDeps['pool'];
  /** After each turn (schedules record their runs here). */
  afterTurn?(turn: Turn, outcome: TurnOutcome): Promise<void>;
}

/** Messages folded into one turn at most; the rest go to the next turn. */
const MAX_BATCH = 50;

/**
 * Consumes the inbound queue. A job only says "this conversation has work": the worker that wins the
 * conversation's lease runs its turns in order until nothing is pending, renewing the lease as it goes.
 * A worker that dies stops renewing; the sweep re-announces the conversation and another worker reruns
 * the unfinished turn under the same turn id.
 */
export class SandboxWorker {
  readonly id = `w-${randomUUID().slice(0, 8)}`;
  private worker?: Worker;
  /** This host's own queue (conversations homed here), beside the shared one. */
  private hostWorker?: Worker;
  private host?: HostGate;
  private timers: NodeJS.Timeout[] = [];
  private control?: Redis;
  private readonly leaseMs: number;
  private readonly capacity: SandboxCapacity;
  private readonly retention: VolumeRetention;
  private readonly tasks: TaskGate;
  private readonly enforcement: TurnEnforcement;

  constructor(
    private readonly deps: SandboxWorkerDeps,
    private readonly options: {
      instance: string;
      concurrency: number;
      leaseSeconds: number;
      idleSeconds: number;
      /** Refused egress requests in one turn that kill the sandbox. */
      egressRefusalTripwire: number;
      /** Running sandboxes this worker keeps at most. */
      maxLive: number;
      /** Conversation-id prefixes wiped rather than stopped when idle. */
      ephemeral: string[];
      /** Running tasks per person and per channel (src/worker/tasks/fairness.ts). */
      taskLimits: TaskLimits;
      /** Days unused after which a conversation's sandbox and volumes go (0 or absent: kept). */
      retentionDays?: number;
    },
  ) {
    this.leaseMs = options.leaseSeconds * 1000;
    this.enforcement = new TurnEnforcement(deps, {
      actor: `worker:${this.id}`,
      egressRefusalTripwire: options.egressRefusalTripwire,
    });
    this.capacity = new SandboxCapacity(deps, options);
    this.retention = new VolumeRetention(deps, {
      instance: options.instance,
      retentionDays: options.retentionDays ?? 0,
      actor: `worker:${this.id}`,
    });
    this.tasks = new TaskGate({
      ...deps,
      tasks: deps.inbound.tasks.store,
      instance: options.instance,
      kick: (conversation, period) => deps.inbound.kick(conversation, period),
      limits: options.taskLimits,
    });
  }

  /** Keeps each conversation on its home host (src/worker/hosts); set before `start`. */
  useHost(gate: HostGate): void {
    this.host = gate;
  }

  start(): void {
    this.worker = this.consume(INBOUND_QUEUE, false);
    if (this.host) this.hostWorker = this.consume(this.host.queueName, true);
    this.control = this.deps.connection.duplicate();
    this.control.on('message', (_channel: string, raw: string) => this.enforcement.onControl(raw));
    void this.control.subscribe(instanceKeys(this.options.instance).control);
    this.every(Math.max(this.leaseMs, 2000), () => this.sweep());
    this.every(Math.min(30_000, this.options.idleSeconds * 500), () => this.stopIdleSandboxes());
    if (this.options.retentionDays) this.every(3_600_000, () => this.removeExpired().then(() => undefined));
  }

  private consume(queue: string, own: boolean): Worker {
    const worker = new Worker(queue, (job) => this.process(job, own), {
      connection: this.deps.connection,
      prefix: bullPrefix(this.options.instance),
      concurrency: this.options.concurrency,
    });
    worker.on('failed', (job, error) =>
      this.deps.logger.error({ jobId: job?.id, err: error }, 'inbound job failed'),
    );
    worker.on('error', (error) => this.deps.logger.warn({ err: error }, 'inbound worker error'));
    return worker;
  }

  private every(ms: number, task: () => Promise<void>): void {
    const timer = setInterval(() => {
      task().catch((error) => this.deps.logger.warn({ err: error }, 'periodic task failed'));
    }, ms);
    timer.unref();
    this.timers.push(timer);
  }

  /** SIGKILLs the conversation's sandbox (if on this worker's engine) and ends its running turn. */
  kill(conversation: ConversationId, by: string, reason: string): Promise<void> {
    return this.enforcement.kill(conversation, by, reason);
  }

  /** A tripwire fired: quarantine first (so no new turn starts), then kill. */
  tripwire(conversation: ConversationId, reason: string): void {
    this.enforcement.tripwire(conversation, reason);
  }

  /** Counts refused egress per conversation during its turn; too many is a tripwire. */
  noteEgress(entry: EgressRecord): void {
    this.enforcement.noteEgress(entry);
  }

  /** `own`: the job came on this host's queue (see HostGate.route). */
  async process(job: Job, own = false): Promise<string> {
    const parsed = InboundJob.safeParse(job.data);
    if (!parsed.success) {
      throw new UnrecoverableError(`inbound job ${job.id} is malformed: ${parsed.error.issues[0]?.message}`);
    }
    const conversation = parsed.data.conversation;
    const routed = { ...(job.id ? { id: job.id } : {}), data: parsed.data };
    const route = await this.host?.route(conversation, routed, own);
    if (route && route !== 'run') return route;
    const token = `${this.id}:${randomUUID()}`;
    if (!(await this.deps.store.acquire(conversation, token, this.leaseMs))) {
      // The holder drains everything pending before it lets go (see RELEASE), including this message.
      return 'held elsewhere';
    }
    if (this.host && !(await this.host.isHome(conversation))) {
      // Moved between the gate and the lease (a drain): its new home runs it.
      await this.deps.store.yieldTurn(conversation, token);
      return this.host.route(conversation, routed, false);
    }
    const abandon = new AbortController();
    const renewal = setInterval(() => {
      this.deps.store
        .renew(conversation, token, this.leaseMs)
        .then((held) => held || abandon.abort())
        .catch((error) => this.deps.logger.warn({ err: error, conversation }, 'lease renewal failed'));
    }, this.leaseMs / 3);
    try {
      return await this.drain(conversation, token, abandon.signal);
    } finally {
      clearInterval(renewal);
    }
  }

  private async drain(conversation: ConversationId, token: string, abandon: AbortSignal): Promise<string> {
    let turns = 0;
    for (;;) {
      if (abandon.aborted) return `lease lost after ${turns} turns`;
      const next = await this.deps.store.nextTurn(conversation, token, MAX_BATCH, this.leaseMs);
      if (next && 'wait' in next) {
        // Another runner's unfinished turn: it may yet finish it (Redis was away); take it over after.
        await sleep(next.wait, undefined, { signal: abandon }).catch(() => undefined);
        continue;
      }
      if (!next) {
        const released = await this.deps.store.release(conversation, token);
        if (released === 'more') continue;
        return `${turns} turns`;
      }
      const turn = next.takenOverFrom ? await takeOver(this.deps, `worker:${this.id}`, next) : next;
      // Asked alongside the checks below: whether its sandbox runs (then the live cap needs no listing).
      const ownState = this.capacity.stateOf(conversation);
      const quarantined = await this.deps.quarantine.get(conversation);
      if (quarantined) {
        await this.deps.publish(errorEvent(turn, quarantineNotice(quarantined)));
        await this.deps.store.complete(turn, token);
        await this.tasks.turnEnded(turn, 'killed');
        await this.afterTurn(turn, 'killed');
        continue;
      }
      const admission = await this.tasks.admit(turn, `worker:${this.id}`);
      if (admission === 'wait') {
        // Over a per-person or per-channel limit: the turn stays in flight in Redis and runs when nudged.
        await this.deps.store.yieldTurn(conversation, token);
        return `${turns} turns, then waiting in line`;
      }
      if (admission === 'cancelled') {
        await this.deps.store.complete(turn, token);
        continue;
      }
      await this.capacity.ensureRoom(turn, abandon, `worker:${this.id}`, ownState);
      const stop = this.enforcement.begin(conversation);
      const outcome = await this.runWithCommands(turn, { abandon, stop }).finally(() =>
        this.enforcement.end(conversation),
      );
      if (outcome === 'abandoned') return `lease lost during ${turn.turnId}`;
      await this.deps.store.complete(turn, token);
      await this.tasks.turnEnded(turn, outcome);
      await this.afterTurn(turn, outcome);
      await this.deps.connection.zadd(instanceKeys(this.options.instance).lastUsed, Date.now(), conversation);
      turns += 1;
    }
  }

  /** Never fails the drain: what follows a turn is bookkeeping, logged when it fails. */
  private async afterTurn(turn: Turn, outcome: TurnOutcome): Promise<void> {
    await this.deps
      .afterTurn?.(turn, outcome)
      .catch((error: unknown) =>
        this.deps.logger.warn({ err: error, turnId: turn.turnId }, 'after-turn bookkeeping failed'),
      );
  }

  /** Runs a batch's segments in order: model turns, `reset` (wipe) and `run` (a shell command). */
  private async runWithCommands(turn: Turn, signals: { abandon: AbortSignal; stop: AbortSignal }) {
    let outcome: TurnOutcome = 'replied';
    for (const segment of planSegments(turn)) {
      if (segment.kind === 'done') {
        await closeTask(
          { ...this.deps, tasks: this.deps.inbound.tasks.store, ephemeral: this.options.ephemeral },
          segment.turn,
          `worker:${this.id}`,
        );
        continue;
      }
      if (segment.kind === 'reset') {
        await this.deps.driver.remove(turn.conversation, { wipe: true });
        await this.deps.ledger.clear(turn.conversation);
        await this.deps.broker.forget?.(turn.conversation);
        await this.deps.publish(
          replyEvent(segment.turn, 'Conversation reset: its workspace and history are wiped.', [], 'reset'),
        );
        continue;
      }
      outcome =
        segment.kind === 'run'
          ? await runCommand(this.deps, segment.turn, segment.command, signals)
          : await runTurn(this.deps, segment.turn, signals);
      if (outcome === 'abandoned' || outcome === 'stopped') return outcome;
    }
    return outcome;
  }

  /** Re-announces conversations with work but no live holder (a dead worker, a lost announcement). */
  async sweep(): Promise<void> {
    const period = Math.floor(Date.now() / this.leaseMs);
    for (const conversation of await this.deps.store.activeConversations()) {
      if (await this.deps.store.leaseHolder(conversation)) continue;
      await this.deps.inbound.kick(conversation, period);
    }
  }

  /** Stops sandboxes unused for the idle timeout; they start again on the next message. */
  stopIdleSandboxes(now = Date.now()): Promise<void> {
    return this.capacity.stopIdle(now);
  }

  /** Removes the sandboxes and volumes of conversations unused for the retention period. */
  removeExpired(now = Date.now()): Promise<ConversationId[]> {
    return this.retention.sweep(now);
  }

  async stop(): Promise<void> {
    for (const timer of this.timers) clearInterval(timer);
    this.control?.disconnect();
    await Promise.all([this.worker?.close(), this.hostWorker?.close()]);
  }
}
