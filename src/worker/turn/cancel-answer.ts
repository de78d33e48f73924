import type { SandboxSession } from '../../../sandbox/host/driver/types.js';
import type { TurnResult } from './turn-machine.js';

/**
 * How long a runtime has to answer a `stop`'s cancel (its `turn_done`) before its sandbox is killed.
 * A runtime that still reads answers at once; one its agent froze (SIGSTOP, same uid) or whose loop is
 * blocked never does, and would take the conversation's next turn to its timeout too.
 */
export const CANCEL_GRACE_MS = 5000;

/**
 * Whether the sandbox goes after a turn (or a /run) that ended so, given whether the runtime said
 * the run is over (`turn_done`, before or after the cancel). A run past its wall time: the runtime
 * was sent a cancel only then, long after it should have ended on its own, so it goes at once. A
 * `stop`: unless the runtime answered within CANCEL_GRACE_MS. Anything else ended with the runtime's
 * own `turn_done`, the sandbox gone, a kill (which kills it), or the worker letting go of the turn.
 */
export function killsSandbox(result: TurnResult, answered: boolean): boolean {
  if (result.kind === 'error') return result.timedOut === true;
  if (result.kind === 'stopped') return result.reason.kind === 'stop' && !answered;
  return false;
}

/** Whether the runtime's answer to the cancel is worth waiting for (else killsSandbox needs none). */
export function awaitsCancelAnswer(result: TurnResult): boolean {
  return result.kind === 'stopped' && result.reason.kind === 'stop';
}

/**
 * Watches a run's lines for its `turn_done`, from before the run starts until `answered` settles (or
 * `off`): true once it came (or the sandbox's stream ended: nothing is left to kill), false when it
 * has not within `graceMs`.
 */
export function watchRunEnd(session: SandboxSession, runId: string) {
  let ended = false;
  let notify: (() => void) | undefined;
  const end = () => {
    ended = true;
    notify?.();
  };
  const offs = [
    session.onMessage((line) => {
      if (line.ok && line.value.type === 'turn_done' && line.value.turnId === runId) end();
    }),
    session.onClose(end),
  ];
  const off = () => {
    for (const unsubscribe of offs.splice(0)) unsubscribe();
  };
  return {
    off,
    answered(graceMs: number): Promise<boolean> {
      if (ended) {
        off();
        return Promise.resolve(true);
      }
      return new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => {
          off();
          resolve(false);
        }, graceMs);
        notify = () => {
          clearTimeout(timer);
          off();
          resolve(true);
        };
      });
    },
  };
}
