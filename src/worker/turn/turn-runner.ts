import { randomUUID } from 'node:crypto';
import type { SandboxSession } from '../../../sandbox/host/driver/types.js';
import type { Logger } from '../../contracts/log/logger.js';
import type { ChatMessage, RuntimeToWorker, WorkerToRuntime } from '../../contracts/protocol/agent.js';
import { type SkillToolDefinition, skillToolDefinition } from '../../contracts/protocol/skill-tools.js';
import type { Turn } from '../../shared/queue/conversation-store.js';
import { silentTrail, type TurnTrail } from '../audit/turn-trail.js';
import type { TurnSkills } from '../skills/turn-skills.js';
import { CANARY_PATH, canaryFileContent, canaryIntact, carriesCanary, touchesCanary } from './canary.js';
import { HostCallLedger, relayHostTool } from './host-tool-relay.js';
import { type StopReason, stopNotice, stopReasonOf } from './stop-reason.js';
import type { TurnOutcome, TurnRunnerDeps } from './turn-deps.js';
import { describeToolStep, errorEvent, progressEvent, replyEvent } from './turn-events.js';
import { collectOutbox, deliverInbox, outboxTouched, withSkippedNote } from './turn-files.js';
import { openTurnSandbox } from './turn-open.js';

export type { ModelChat, TurnOutcome, TurnRunnerDeps } from './turn-deps.js';

/** Protocol errors tolerated in one turn before the sandbox is judged to be misbehaving. */
const MAX_BAD_LINES = 50;
/** Lines of any kind in one turn: far above what a turn within its model-call budget sends. */
const MAX_LINES_PER_TURN = 5000;

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
  const working = deps.publish(progressEvent(turn, 'start', 'working…'));
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
  try {
    // How the previous turn left the workspace, when nothing can have changed it since: then neither
    // the canary nor the audit needs the engine's archive API before the runtime gets the turn.
    // The canary token only now: a sandbox claimed from the warm pool brings its own, planted already.
    const [prior, canary] = await Promise.all([
      trail.priorWorkspace(session.containerId),
      deps.canaryFor?.(turn.conversation) ?? '',
      working,
    ]);
    const missing = await deliverInbox(deps.driver, deps.blobs, turn);
    if (missing.length > 0) log.warn({ missing }, 'attachments expired before the turn');
    // Planted unless the workspace is known to hold it as planted (not deleted, changed or chmodded).
    const plant = canary !== '' && !canaryIntact(prior, canary);
    if (plant) await deps.driver.putWorkspaceFile(turn.conversation, CANARY_PATH, canaryFileContent(canary));
    // After everything the worker puts in: the diff at the end is then the agent's doing alone.
    const delivered = turn.messages.some((m) => m.files.length > 0);
    await trail.workspaceBefore(plant || delivered ? undefined : prior);
    if (skills?.notice) await deps.publish(progressEvent(turn, 'skills', skills.notice));
    if (skills) trail.skillTools?.(skills.toolSkills);
    const result = await driveTurn(deps, turn, session, signals, log, trail, canary, skills);
    if (result.kind === 'abandoned') return 'abandoned';
    // Kept for the next turn only after a clean end (the runtime reaped the agent's processes).
    const changes = await trail.workspaceAfter({ keep: result.kind === 'reply' });
    if (result.kind === 'stopped' && result.reason.kind === 'kill') {
      await deps.publish(errorEvent(turn, stopNotice(result.reason)));
      return 'killed';
    }
    if (result.kind === 'stopped') {
      await deps.publish(replyEvent(turn, stopNotice(result.reason), [], 'stopped'));
      return 'stopped';
    }
    if (result.kind === 'reply') {
      const outbox = outboxTouched(changes)
        ? await collectOutbox(deps, turn, startedAt, deps.config.SANDBOT_FILE_MAX_BYTES)
        : { files: [], skipped: [] };
      await deps.publish(replyEvent(turn, withSkippedNote(result.text, outbox.skipped), outbox.files));
      return 'replied';
    }
    await deps.publish(errorEvent(turn, result.message));
    return 'failed';
  } finally {
    await session.close().catch(() => undefined);
  }
}

type TurnResult =
  | { kind: 'reply'; text: string }
  | { kind: 'error'; message: string }
  | { kind: 'stopped'; reason: StopReason }
  | { kind: 'abandoned' };

function driveTurn(
  deps: TurnRunnerDeps,
  turn: Turn,
  session: SandboxSession,
  { abandon, stop }: { abandon: AbortSignal; stop: AbortSignal },
  log: Logger,
  trail: TurnTrail,
  canary: string,
  skills?: TurnSkills,
): Promise<TurnResult> {
  const { config } = deps;
  // Each run of a turn gets its own protocol id: a rerun after a takeover must not take the old run's
  // lines (e.g. its turn_done) for its own. Outbound events keep the turn's id, for idempotency.
  const runId = `${turn.turnId}@${randomUUID().slice(0, 8)}`;
  // A sandbox that is gone (stopped, engine restarted) cannot be told anything: the turn still ends.
  const send = (message: WorkerToRuntime) => {
    try {
      session.send(message);
    } catch (error) {
      log.info({ err: error, type: message.type }, 'not sent: the sandbox is gone');
    }
  };
  const modelAbort = new AbortController();
  // Host tools offered in this turn, and the calls to them the model made (only those are carried out).
  const hostOffer = deps.hostTools?.offered(turn).catch(() => []) ?? Promise.resolve([]);
  const hostCalls = new HostCallLedger();
  let lastAnswer: ChatMessage | undefined;
  let modelFailure: string | undefined;
  let modelCalls = 0;
  let tokens = 0;
  let toolSteps = 0;
  let badLines = 0;
  let lines = 0;
  // Model requests are handled one at a time, in the order the runtime sent them.
  let chain = Promise.resolve();

  return new Promise<TurnResult>((resolve) => {
    const cleanups: (() => void)[] = [];
    let finished = false;
    const finish = (result: TurnResult) => {
      if (finished) return;
      finished = true;
      for (const cleanup of cleanups) cleanup();
      modelAbort.abort();
      if (result.kind !== 'reply') send({ type: 'cancel', turnId: runId });
      resolve(result);
    };
    const timer = setTimeout(() => {
      trail.limitHit('turn_timeout', { seconds: config.SANDBOX_TURN_TIMEOUT_SECONDS });
      finish({
        kind: 'error',
        message: `The turn took longer than ${config.SANDBOX_TURN_TIMEOUT_SECONDS} s and was stopped.`,
      });
    }, config.SANDBOX_TURN_TIMEOUT_SECONDS * 1000);
    cleanups.push(() => clearTimeout(timer));
    const onAbandon = () => finish({ kind: 'abandoned' });
    const onStop = () => finish({ kind: 'stopped', reason: stopReasonOf(stop) });
    if (abandon.aborted) return onAbandon();
    if (stop.aborted) return onStop();
    abandon.addEventListener('abort', onAbandon, { once: true });
    stop.addEventListener('abort', onStop, { once: true });
    cleanups.push(() => abandon.removeEventListener('abort', onAbandon));
    cleanups.push(() => stop.removeEventListener('abort', onStop));

    cleanups.push(
      session.onClose((reason) =>
        finish({ kind: 'error', message: `Your sandbox stopped during the turn (${reason}).` }),
      ),
    );
    cleanups.push(
      session.onMessage((line) => {
        lines += 1;
        const message: RuntimeToWorker | undefined = line.ok ? line.value : undefined;
        // Lines that are malformed, or well-formed but not about this run (forged, or leftovers), are
        // suspect; a turn's own traffic is a few hundred lines at most.
        const foreign = !message || !('turnId' in message) || message.turnId !== runId;
        if (foreign) {
          badLines += 1;
          if (badLines <= 20)
            log.warn({ error: line.ok ? 'not for this turn' : line.error }, 'unexpected protocol line');
        }
        if (badLines > MAX_BAD_LINES || lines > MAX_LINES_PER_TURN) {
          // Protocol abuse is a tripwire: the sandbox is killed and the conversation quarantined.
          const reason = `protocol abuse: ${badLines > MAX_BAD_LINES ? `over ${MAX_BAD_LINES} malformed or foreign lines` : `over ${MAX_LINES_PER_TURN} lines`} in one turn`;
          deps.tripwire?.(turn.conversation, reason);
          finish({ kind: 'stopped', reason: { kind: 'kill', by: 'tripwire', reason } });
          return;
        }
        if (!message || foreign) return;
        switch (message.type) {
          case 'model_request':
            chain = chain.then(() => answerModelRequest(message.requestId, message.messages));
            return;
          case 'tool_started':
            toolSteps += 1;
            void deps
              .publish(progressEvent(turn, `tool:${toolSteps}`, describeToolStep(message.name, message.args)))
              .catch((error) => log.warn({ err: error }, 'progress not published'));
            return;
          case 'host_tool_request':
            void relayHostTool({
              hostTools: deps.hostTools,
              ledger: hostCalls,
              turn,
              request: message,
              signal: modelAbort.signal,
              send,
              log,
            });
            return;
          case 'tool_finished':
            trail.toolFinished(message);
            return;
          case 'turn_done':
            // Wait for a model answer still being relayed, then decide from what the worker itself saw.
            void chain.then(() => finish(outcome()));
            return;
          case 'error':
            log.info({ message: message.message.slice(0, 300) }, 'runtime reported an error');
            return;
          default:
            return;
        }
      }),
    );

    const outcome = (): TurnResult => {
      if (modelFailure) return { kind: 'error', message: modelFailure };
      const text = lastAnswer?.content.trim();
      if (lastAnswer && !lastAnswer.tool_calls?.length && text) return { kind: 'reply', text };
      return { kind: 'error', message: 'The agent ended its turn without an answer.' };
    };

    const answerModelRequest = async (requestId: string, messages: ChatMessage[]) => {
      if (canary && carriesCanary(messages, canary)) {
        deps.tripwire?.(turn.conversation, 'the agent read the canary credentials file');
        return;
      }
      if (modelCalls >= config.SANDBOT_MAX_MODEL_CALLS_PER_TURN) {
        modelFailure = `The agent reached its limit of ${config.SANDBOT_MAX_MODEL_CALLS_PER_TURN} model calls for one turn.`;
        trail.limitHit('model_calls_per_turn', { max: config.SANDBOT_MAX_MODEL_CALLS_PER_TURN });
        send({ type: 'model_error', turnId: runId, requestId, message: modelFailure });
        return;
      }
      if (tokens >= config.SANDBOT_MAX_TOKENS_PER_TURN) {
        modelFailure = `The agent used its budget of ${config.SANDBOT_MAX_TOKENS_PER_TURN} model tokens for one turn.`;
        trail.limitHit('tokens_per_turn', { max: config.SANDBOT_MAX_TOKENS_PER_TURN, used: tokens });
        send({ type: 'model_error', turnId: runId, requestId, message: modelFailure });
        return;
      }
      modelCalls += 1;
      const call = trail.modelRequest(requestId, config.SANDBOT_MODEL, messages);
      try {
        const answer = await deps.broker.chat({
          model: config.SANDBOT_MODEL,
          system: skills ? skills.systemPrompt(deps.systemPrompt) : deps.systemPrompt,
          messages,
          signal: modelAbort.signal,
          ...toolsOffered([...(skills?.tools.map(skillToolDefinition) ?? []), ...(await hostOffer)]),
        });
        call.answered(answer);
        tokens += (answer.promptTokens ?? 0) + (answer.completionTokens ?? 0);
        const { message } = answer;
        if (canary && touchesCanary(message.tool_calls)) {
          deps.tripwire?.(turn.conversation, 'the agent went for the canary credentials file');
          return;
        }
        lastAnswer = message;
        hostCalls.noteAnswer(message);
        send({ type: 'model_response', turnId: runId, requestId, message });
      } catch (error) {
        call.failed(modelAbort.signal.aborted ? 'cancelled: the turn ended' : messageOf(error));
        if (modelAbort.signal.aborted) return;
        modelFailure = messageOf(error);
        send({ type: 'model_error', turnId: runId, requestId, message: modelFailure });
      }
    };

    send({
      type: 'turn',
      turnId: runId,
      messages: turn.messages.map((m) => ({ user: m.user.name ?? m.user.id, text: m.text })),
      limits: {
        toolTimeoutMs: config.SANDBOX_TOOL_TIMEOUT_SECONDS * 1000,
        toolOutputBytes: config.SANDBOX_TOOL_OUTPUT_BYTES,
      },
      ...(skills?.tools.length ? { tools: skills.tools } : {}),
    });
  });
}

/** Tools besides the built-in ones, when there are any (the broker then offers them too). */
function toolsOffered(tools: SkillToolDefinition[]): { tools?: SkillToolDefinition[] } {
  return tools.length ? { tools } : {};
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
