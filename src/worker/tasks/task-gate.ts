import type { Redis } from 'ioredis';
import type { AuditActor } from '../../contracts/audit/events.js';
import type { ConversationId } from '../../contracts/conversation/id.js';
import type { Logger } from '../../contracts/log/logger.js';
import type { OutboundEvent } from '../../contracts/protocol/outbound.js';
import type { Task, TaskEvent } from '../../contracts/tasks/task.js';
import type { AuditRecorder } from '../../shared/audit/audit-log.js';
import type { Turn } from '../../shared/queue/conversation-store.js';
import type { TaskStore } from '../../shared/stores/task-store.js';
import { progressEvent } from '../turn/turn-events.js';
import type { TurnOutcome } from '../turn/turn-runner.js';
import { type Contender, decideAdmission, type TaskLimits, waitingNotice } from './fairness.js';

export interface TaskGateDeps {
  tasks: TaskStore;
  connection: Redis;
  instance: string;
  /** Re-announces a conversation, so a waiting task is looked at again when a slot frees. */
  kick(conversation: ConversationId, period: number): Promise<void>;
  publish(event: OutboundEvent): Promise<void>;
  audit?: AuditRecorder;
  logger: Logger;
  limits: TaskLimits;
}

const OUTCOME_EVENTS: Partial<Record<TurnOutcome, TaskEvent>> = {
  replied: 'replied',
  failed: 'failed',
  stopped: 'stopped',
  killed: 'killed',
};

const contender = (task: Task, since: number): Contender => ({
  conversation: task.conversation,
  owner: `${task.owner.platform}:${task.owner.id}`,
  scope: task.scope,
  since,
});

/**
 * The worker's side of tasks: before a turn, whether the task may run now under the per-person and
 * per-channel limits (else it waits in line, told where it stands, and its turn stays queued in Redis);
 * after a turn, its new status, and a nudge to the tasks in line when a slot freed.
 */
export class TaskGate {
  constructor(private readonly deps: TaskGateDeps) {}

  /**
   * 'run'; 'wait' (the thread was told its place in line; the caller yields the conversation); or
   * 'cancelled': a sub-agent whose delegation ended (timed out, its parent's turn gone) does not start.
   */
  async admit(turn: Turn, actor: AuditActor): Promise<'run' | 'wait' | 'cancelled'> {
    const { tasks } = this.deps;
    const task = await tasks.get(turn.conversation);
    if (!task) return 'run';
    // Sub-agents run on their parent's slot; closing a task needs no slot at all.
    if (task.depth > 0) {
      if (task.status === 'done' || (task.deadline !== undefined && task.deadline < Date.now()))
        return 'cancelled';
      await tasks.apply(task.conversation, 'started', false);
      return 'run';
    }
    if (turn.messages.some((m) => m.command === 'done')) return 'run';
    const admission = await tasks.withAdmissionLock(async () => {
      const [running, waiting] = await Promise.all([tasks.running(), tasks.waiting()]);
      const since = waiting.find((w) => w.task.conversation === task.conversation)?.since ?? Date.now();
      const decision = decideAdmission(
        contender(task, since),
        running.map((t) => contender(t, 0)),
        waiting.map((w) => contender(w.task, w.since)),
        this.deps.limits,
      );
      if (decision.admit) await tasks.apply(task.conversation, 'started');
      else await tasks.hold(task.conversation, since);
      return decision;
    });
    if (admission.admit) return 'run';
    const step = `queue-${admission.reason}-${admission.position}`;
    // The event id carries the place in line: the thread hears of each new place once.
    await this.deps.publish(progressEvent(turn, step, waitingNotice(admission)));
    if (await tasks.noteHeld(task.conversation, step)) {
      await this.deps.audit?.record({
        conversation: task.conversation,
        turnId: turn.turnId,
        actor,
        kind: 'task.held',
        data: { reason: admission.reason, position: admission.position, limit: admission.limit },
      });
    }
    return 'wait';
  }

  /** Records how the turn ended; when a top-level task stopped running, the line moves up. */
  async turnEnded(turn: Turn, outcome: TurnOutcome): Promise<void> {
    const event = OUTCOME_EVENTS[outcome];
    if (!event) return;
    const task = await this.deps.tasks.get(turn.conversation);
    if (!task) return;
    await this.deps.tasks.apply(task.conversation, event, task.depth === 0);
    if (task.depth === 0) await this.nudgeWaiting();
  }

  /** Each waiting task is looked at again (the first that fits runs; the others learn their new place). */
  async nudgeWaiting(): Promise<void> {
    const now = Date.now();
    for (const { task } of await this.deps.tasks.waiting()) {
      await this.deps
        .kick(task.conversation, now)
        .catch((error: unknown) =>
          this.deps.logger.warn({ err: error, conversation: task.conversation }, 'waiting task not nudged'),
        );
    }
  }
}
