import type { Turn } from '../shared/queue/conversation-store.js';
import { silentTrail, type TurnTrail } from './audit/turn-trail.js';
import { awaitsCancelAnswer, CANCEL_GRACE_MS, killsSandbox, watchRunEnd } from './turn/cancel-answer.js';
import { stopNotice, stopReasonOf } from './turn/stop-reason.js';
import { newRunId } from './turn/turn-drive.js';
import { errorEvent, replyEvent } from './turn/turn-events.js';
import type { TurnResult } from './turn/turn-machine.js';
import { killWedged, type TurnOutcome, type TurnRunnerDeps } from './turn/turn-runner.js';

type RunOutput = { ok: boolean; output: string; truncated: boolean };

/**
 * Runs a chat `/run` command: one shell command in the conversation's sandbox, without the model.
 * The output shown is the sandbox's own (that is what was asked for), fenced as code.
 */
export async function runCommand(
  deps: TurnRunnerDeps,
  turn: Turn,
  command: string,
  signals: { abandon: AbortSignal; stop: AbortSignal },
): Promise<TurnOutcome> {
  const trail = deps.observe?.(turn, 'run') ?? silentTrail;
  trail.started();
  const outcome = await runCommandIn(
    { ...deps, publish: trail.publishing(deps.publish) },
    turn,
    command,
    signals,
    trail,
  );
  await trail.finished(outcome);
  return outcome;
}

async function runCommandIn(
  deps: TurnRunnerDeps,
  turn: Turn,
  command: string,
  signals: { abandon: AbortSignal; stop: AbortSignal },
  trail: TurnTrail,
): Promise<TurnOutcome> {
  const runId = newRunId(turn);
  let session: Awaited<ReturnType<TurnRunnerDeps['driver']['open']>>;
  try {
    session = await deps.driver.open(turn.conversation, {
      network: await deps.networkFor?.(turn.conversation),
    });
  } catch (error) {
    await deps.publish(errorEvent(turn, `Your sandbox could not be started: ${(error as Error).message}`));
    return 'failed';
  }
  await trail.workspaceBefore();
  const runEnd = watchRunEnd(session, runId);
  const toolSeconds = deps.config.SANDBOX_TOOL_TIMEOUT_SECONDS;
  let pastDeadline = false;
  const result = await new Promise<RunOutput | string>((resolve) => {
    const cleanups: (() => void)[] = [];
    let output: RunOutput | undefined;
    const done = (value: typeof output | string) => {
      for (const cleanup of cleanups) cleanup();
      resolve(value ?? 'The command ended without a result.');
    };
    const timer = setTimeout(
      () => {
        pastDeadline = true;
        done(`The command did not finish within ${toolSeconds + 10} s.`);
      },
      (toolSeconds + 10) * 1000,
    );
    cleanups.push(() => clearTimeout(timer));
    for (const signal of [signals.abandon, signals.stop]) {
      const onAbort = () => {
        if (signals.stop.aborted && stopReasonOf(signals.stop).kind === 'stop') cancel(session, runId);
        done(signals.stop.aborted ? stopNotice(stopReasonOf(signals.stop)) : 'Stopped.');
      };
      signal.addEventListener('abort', onAbort, { once: true });
      cleanups.push(() => signal.removeEventListener('abort', onAbort));
    }
    cleanups.push(session.onClose((reason) => done(`Your sandbox stopped during the command (${reason}).`)));
    cleanups.push(
      session.onMessage((line) => {
        if (!line.ok || !('turnId' in line.value) || line.value.turnId !== runId) return;
        if (line.value.type === 'tool_finished') output = line.value;
        if (line.value.type === 'turn_done') done(output);
      }),
    );
    try {
      session.send({
        type: 'run',
        turnId: runId,
        command,
        limits: {
          toolTimeoutMs: toolSeconds * 1000,
          toolOutputBytes: deps.config.SANDBOX_TOOL_OUTPUT_BYTES,
        },
      });
    } catch (error) {
      done(`Your sandbox could not take the command: ${(error as Error).message}`);
    }
  });
  trail.commandFinished(command, typeof result === 'string' ? undefined : result);
  const outcome = await publishRun(deps, turn, command, result, signals);
  // After the answer: a runtime past the deadline, or not answering a stop's cancel, is wedged (a
  // frozen one never reads again) and its sandbox goes; the next turn starts it again.
  const ended = runEnding(pastDeadline, signals);
  const answered = !!ended && awaitsCancelAnswer(ended) && (await runEnd.answered(CANCEL_GRACE_MS));
  if (ended && killsSandbox(ended, answered)) {
    const log = deps.logger.child({ conversation: turn.conversation, turnId: turn.turnId });
    await killWedged(deps, turn, log, pastDeadline ? '/run past its deadline' : 'stop not answered');
  }
  runEnd.off();
  await session.close().catch(() => undefined);
  return outcome;
}

/** How a run ended that the runtime did not end itself (its turn_done); undefined when it did. */
function runEnding(
  pastDeadline: boolean,
  signals: { abandon: AbortSignal; stop: AbortSignal },
): TurnResult | undefined {
  if (pastDeadline) return { kind: 'error', message: 'past its deadline', timedOut: true };
  if (signals.abandon.aborted) return { kind: 'abandoned' };
  if (signals.stop.aborted) return { kind: 'stopped', reason: stopReasonOf(signals.stop) };
  return undefined;
}

/** A `stop` ends the run at once; the runtime then ends it too (and says so with its turn_done). */
function cancel(session: { send(message: { type: 'cancel'; turnId: string }): void }, runId: string): void {
  try {
    session.send({ type: 'cancel', turnId: runId });
  } catch {
    // The sandbox is gone: nothing to cancel.
  }
}

/** Tells the user how the command ended. The workspace's diff is recorded after (trail.finished). */
async function publishRun(
  deps: TurnRunnerDeps,
  turn: Turn,
  command: string,
  result: RunOutput | string,
  signals: { abandon: AbortSignal; stop: AbortSignal },
): Promise<TurnOutcome> {
  if (signals.abandon.aborted) return 'abandoned';
  if (signals.stop.aborted && stopReasonOf(signals.stop).kind === 'kill') {
    await deps.publish(errorEvent(turn, stopNotice(stopReasonOf(signals.stop))));
    return 'killed';
  }
  if (typeof result === 'string') {
    await deps.publish(errorEvent(turn, result));
    return 'failed';
  }
  const fenced = `\`\`\`\n${result.output.trimEnd().replaceAll('```', '`\u200b``') || '(no output)'}\n\`\`\`${result.truncated ? '\n(output truncated)' : ''}`;
  await deps.publish(replyEvent(turn, `$ ${command}\n${fenced}`));
  return result.ok ? 'replied' : 'failed';
}
