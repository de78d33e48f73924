import type { ConversationId } from '../../../src/contracts/conversation/id.js';
import type { RuntimeToWorker, WorkerToRuntime } from '../../../src/contracts/protocol/agent.js';
import type { LineResult } from '../../../src/contracts/protocol/lines.js';
import type { SandboxSession, StrayOutput } from './types.js';

/** What a container was made with (its labels), to match an open's options against. */
export interface AttachedAs {
  network: string;
  skills: string;
}

interface Kept {
  session: SandboxSession & { unref?(): void; ref?(): void };
  as: AttachedAs;
  leases: number;
  /** Set once a lease ended: lines nobody listens to are dropped from then on, not kept for the next. */
  sink?: () => void;
  /** What came while no lease was open, for the next lease's betweenTurns(). */
  stray: StrayOutput;
  /** The turns the last lease started or cancelled: their late turn_done or error is expected. */
  lastTurns: Set<string>;
  /** How many such late lines are still excused (one per cancel the last lease sent). */
  lateDue: number;
}

/**
 * Whether a line that came between leases is the runtime's honest late answer to the last lease:
 * the turn_done for a turn the worker cancelled as it gave up on it (no more than one per cancel).
 */
export function isLateAnswer(
  line: LineResult<RuntimeToWorker>,
  lastTurns: ReadonlySet<string>,
  lateDue: number,
): boolean {
  if (!line.ok || lateDue <= 0) return false;
  const message = line.value;
  return message.type === 'turn_done' && lastTurns.has(message.turnId);
}

/**
 * The worker's attach connections, kept open between turns: a warm turn then skips the engine's
 * inspect and attach (≈3 ms of the path to the model). A kept connection is handed out as a lease
 * whose close() only removes the lease's listeners. It goes when its stream ends (the container
 * stopped, was killed or removed), when the driver stops, kills or removes the sandbox, when an open
 * asks for other labels (network policy, skills: the driver then recreates the container), and when
 * more than `max` are kept (the least recently used first). Between leases, lines from the container
 * are dropped: nothing is ever delivered to a later turn that was sent before it.
 */
export class KeptSessions {
  private readonly kept = new Map<ConversationId, Kept>();

  constructor(private readonly max: number) {}

  /** A lease on the kept connection, when there is one that matches; undefined otherwise. */
  lease(
    conversation: ConversationId,
    wanted: { network: string; skills?: string },
  ): SandboxSession | undefined {
    const kept = this.kept.get(conversation);
    if (!kept) return undefined;
    if (
      kept.as.network !== wanted.network ||
      (wanted.skills !== undefined && kept.as.skills !== wanted.skills)
    ) {
      this.drop(conversation);
      return undefined;
    }
    // Most recently used last, for eviction.
    this.kept.delete(conversation);
    this.kept.set(conversation, kept);
    return this.leaseOf(kept);
  }

  /** Keeps a newly attached session and returns the first lease on it. */
  keep(conversation: ConversationId, session: Kept['session'], as: AttachedAs): SandboxSession {
    this.drop(conversation);
    const kept: Kept = {
      session,
      as,
      leases: 0,
      stray: { lines: 0, bytes: 0 },
      lastTurns: new Set(),
      lateDue: 0,
    };
    this.kept.set(conversation, kept);
    session.onClose(() => {
      if (this.kept.get(conversation) === kept) this.kept.delete(conversation);
    });
    for (const [oldest] of this.kept) {
      if (this.kept.size <= this.max) break;
      this.drop(oldest);
    }
    return this.leaseOf(kept);
  }

  /** Whether a connection to the conversation's container is kept (its stream has not ended). */
  has(conversation: ConversationId): boolean {
    return this.kept.has(conversation);
  }

  /** Closes the conversation's kept connection, if any. */
  drop(conversation: ConversationId): void {
    const kept = this.kept.get(conversation);
    if (!kept) return;
    this.kept.delete(conversation);
    void kept.session.close();
  }

  /** Closes every kept connection (the worker stops). */
  dropAll(): void {
    for (const conversation of [...this.kept.keys()]) this.drop(conversation);
  }

  /** A line to the sink: counted unless a lease is open (the lease's listeners have it) or it is expected. */
  private between(kept: Kept, line: LineResult<RuntimeToWorker>): void {
    if (kept.leases > 0) return;
    if (isLateAnswer(line, kept.lastTurns, kept.lateDue)) {
      kept.lateDue -= 1;
      return;
    }
    kept.stray.lines += 1;
    kept.stray.bytes += line.bytes ?? 0;
  }

  private leaseOf(kept: Kept): SandboxSession {
    kept.leases += 1;
    kept.session.ref?.();
    const offs: (() => void)[] = [];
    let ended = false;
    // What came since the last lease ended is this lease's to report; this lease's turns are new.
    let stray: StrayOutput | undefined = kept.stray;
    kept.stray = { lines: 0, bytes: 0 };
    kept.lastTurns = new Set();
    kept.lateDue = 0;
    return {
      conversation: kept.session.conversation,
      containerId: kept.session.containerId,
      // Only the lease the open made: a later one comes after turns that may have run the agent.
      ...(kept.leases === 1 && kept.session.fresh ? { fresh: true } : {}),
      send: (message: WorkerToRuntime) => {
        if (ended) throw new Error(`the lease on the sandbox of ${kept.session.conversation} was closed`);
        if (message.type === 'turn' || message.type === 'run') kept.lastTurns.add(message.turnId);
        if (message.type === 'cancel') kept.lateDue += 1;
        kept.session.send(message);
      },
      betweenTurns: () => {
        const reported = stray ?? { lines: 0, bytes: 0 };
        stray = undefined;
        return reported;
      },
      blocked: () => kept.session.blocked?.() ?? false,
      onDrain: (listener: () => void) => kept.session.onDrain?.(listener) ?? (() => undefined),
      onMessage: (listener: (result: LineResult<RuntimeToWorker>) => void) => {
        const off = kept.session.onMessage(listener);
        offs.push(off);
        return off;
      },
      onClose: (listener: (reason: string) => void) => {
        const off = kept.session.onClose(listener);
        offs.push(off);
        return off;
      },
      close: async () => {
        if (ended) return;
        ended = true;
        for (const off of offs.splice(0)) off();
        kept.leases -= 1;
        kept.sink ??= kept.session.onMessage((line) => this.between(kept, line));
        // An idle kept connection does not keep the process alive.
        if (kept.leases === 0) kept.session.unref?.();
      },
    };
  }
}
