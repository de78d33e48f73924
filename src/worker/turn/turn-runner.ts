import { scheduledNotice } from '../../contracts/schedules/schedule-run.js';
import type { Turn } from '../../shared/queue/conversation-store.js';
import { silentTrail, type TurnTrail } from '../audit/turn-trail.js';
import { CANARY_PATH, canaryFileContent, canaryIntact } from './canary.js';
import { awaitsCancelAnswer, CANCEL_GRACE_MS, killsSandbox, watchRunEnd } from './cancel-answer.js';
import { stopNotice } from './stop-reason.js';
import type { TurnOutcome, TurnRunnerDeps } from './turn-deps.js';
import { driveTurn, messageOf, newRunId } from './turn-drive.js';
import { errorEvent, progressEvent, replyEvent } from './turn-events.js';
import { collectOutbox, deliverInbox, withSkippedNote } from './turn-files.js';
import type { TurnResult } from './turn-machine.js';
import { openTurnSandbox } from './turn-open.js';

export type { ModelChat, TurnOutcome, TurnRunnerDeps } from './turn-deps.js';

/**
 * Runs one turn in the conversation's sandbox. The sandbox's runtime drives the agent loop, but only
 * the worker talks to the model: the reply the user reads is the model answer the worker received
 * itself, never text the sandbox claims.
 */
export async function runTurn(
  deps: TurnRunnerDeps,
  turn: Turn,
  signals: { abandon: AbortSignal; stop: AbortSignal },
): Promise<TurnOutcome> {
  const trail = deps.observe?.(turn, 'chat') ?? silentTrail;
  trail.started();
  const outcome = await runTurnIn({ ...deps, publish: trail.publishing(deps.publish) }, turn, signals, trail);
  await trail.finished(outcome);
  return outcome;
}

async function runTurnIn(
  deps: TurnRunnerDeps,
  turn: Turn,
  signals: { abandon: AbortSignal; stop: AbortSignal },
  trail: TurnTrail,
): Promise<TurnOutcome> {
  const log = deps.logger.child({ conversation: turn.conversation, turnId: turn.turnId });
  // Independent of one another, so not one after the other: the progress note, the skills and the
  // network grants (each a Redis round trip or two before the sandbox is opened).
  const working = deps.publish(progressEvent(turn, 'start', startNote(turn)));
  // Awaited below; this only keeps an early failure from counting as unhandled meanwhile.
  working.catch(() => undefined);
  const opened = await openTurnSandbox(deps, turn);
  if (!opened.ok) {
    log.error({ err: opened.error }, 'sandbox could not be opened');
    await working;
    await deps.publish(errorEvent(turn, `Your sandbox could not be started: ${messageOf(opened.error)}`));
    return 'failed';
  }
  const { session, skills } = opened;
  const startedAt = Date.now();
  const runId = newRunId(turn);
  // From the start: a runtime that ends the run as the stop comes says so before the cancel.
  const runEnd = watchRunEnd(session, runId);
  try {
    // How the previous turn left the workspace, when nothing can have changed it since: then neither
    // the canary nor the audit needs the engine's archive API before the runtime gets the turn.
    // The canary token only now: a sandbox claimed from the warm pool brings its own, planted already.
    const [prior, canary] = await Promise.all([
      trail.priorWorkspace(session.containerId, session.fresh),
      deps.canaryFor?.(turn.conversation) ?? '',
      working,
    ]);
    const missing = await deliverInbox(deps.driver, deps.blobs, turn);
    if (missing.length > 0) log.warn({ missing }, 'attachments expired before the turn');
    // Planted unless the workspace is known to hold it as planted (not deleted, changed or chmodded).
    // A new capped workspace was formatted with it (turn-open.ts): planted already, as putWorkspaceFile would.
    const plant = canary !== '' && !canaryIntact(prior, canary) && opened.seededCanary !== canary;
    if (plant) await deps.driver.putWorkspaceFile(turn.conversation, CANARY_PATH, canaryFileContent(canary));
    // After everything the worker puts in: the diff at the end is then the agent's doing alone.
    const delivered = turn.messages.some((m) => m.files.length > 0);
    await trail.workspaceBefore(plant || delivered ? undefined : prior);
    if (skills?.notice) await deps.publish(progressEvent(turn, 'skills', skills.notice));
    if (skills) trail.skillTools?.(skills.toolSkills);
    const result = await driveTurn({ deps, turn, session, log, trail, canary, skills, runId }, signals);
    if (result.kind === 'abandoned') return 'abandoned';
    const timedOut = killsSandbox(result, true);
    if (timedOut) await killWedged(deps, turn, log, 'turn timed out');
    const outcome = await publishEnd(deps, turn, result, startedAt, trail);
    // The user has the stop's answer: the next turn waits on the runtime's at most the grace.
    const answered = awaitsCancelAnswer(result) && (await runEnd.answered(CANCEL_GRACE_MS));
    if (!timedOut && killsSandbox(result, answered)) await killWedged(deps, turn, log, 'stop not answered');
    // The bookkeeping follows the answer, bounded (SANDBOX_WORKSPACE_READ_*): the user never waits
    // on it. Kept for the next turn only after a clean end (the runtime reaped the agent's processes).
    await trail.workspaceAfter({ keep: result.kind === 'reply' });
    return outcome;
  } finally {
    runEnd.off();
    await session.close().catch(() => undefined);
  }
}

/** The turn's first progress line: a scheduled run says so ("⏰ scheduled task: …"), before anything else. */
export function startNote(turn: Turn): string {
  const scheduled = turn.messages.find((m) => m.schedule);
  return scheduled ? scheduledNotice(scheduled.text) : 'working…';
}

/**
 * A turn past its wall time, or stopped without the runtime answering the cancel within the grace
 * (cancel-answer.ts): only a runtime that still reads acts on a cancel, and one frozen by its agent
 * (SIGSTOP, same uid) or with its loop blocked never does, and would take every later turn of the
 * conversation to its timeout too. So its sandbox goes; the next turn starts it again (its volumes,
 * so its files and history, stay), and nothing the agent left running survives.
 */
export async function killWedged(
  deps: Pick<TurnRunnerDeps, 'driver'>,
  turn: Turn,
  log: TurnRunnerDeps['logger'],
  why: string,
) {
  const killed = await deps.driver.kill(turn.conversation).catch((error: unknown) => {
    log.error({ err: error, why }, 'could not kill a wedged sandbox');
    return false;
  });
  if (killed) log.warn({ why }, 'its sandbox was killed, the next turn starts it again');
}

/**
 * Tells the user how the turn ended. A reply carries the files the turn put in /workspace/outbox: read
 * before it goes out, within the read budget (cut reads are noted in the reply and the audit).
 */
async function publishEnd(
  deps: TurnRunnerDeps,
  turn: Turn,
  result: Exclude<TurnResult, { kind: 'abandoned' }>,
  startedAt: number,
  trail: TurnTrail,
): Promise<TurnOutcome> {
  if (result.kind === 'stopped' && result.reason.kind === 'kill') {
    await deps.publish(errorEvent(turn, stopNotice(result.reason)));
    return 'killed';
  }
  if (result.kind === 'stopped') {
    await deps.publish(replyEvent(turn, stopNotice(result.reason), [], 'stopped'));
    return 'stopped';
  }
  if (result.kind === 'reply') {
    // Nothing ran that could have put a file there: no archive read through the engine.
    const outbox = trail.ranNothing()
      ? { files: [], skipped: [] }
      : await collectOutbox(deps, turn, startedAt, deps.config.SANDBOT_FILE_MAX_BYTES);
    if (outbox.cut) trail.limitHit('workspace_read', { read: 'outbox', ...outbox.cut });
    await deps.publish(replyEvent(turn, withSkippedNote(result.text, outbox.skipped), outbox.files));
    return 'replied';
  }
  await deps.publish(errorEvent(turn, result.message));
  return 'failed';
}
