import { randomUUID } from 'node:crypto';
import type { SandboxNetwork } from '../../sandbox/driver/docker-spec.js';
import type { SandboxDriver, SandboxSession } from '../../sandbox/driver/types.js';
import type { Config } from '../config/schema.js';
import type { ConversationId } from '../conversation/id.js';
import type { BlobStore } from '../files/blob-store.js';
import type { OutboxLedger } from '../files/outbox-ledger.js';
import type { Logger } from '../log/logger.js';
import type { ChatMessage, RuntimeToWorker } from '../protocol/agent.js';
import type { OutboundEvent } from '../protocol/outbound.js';
import type { Turn } from '../queue/conversation-store.js';
import { describeToolStep, errorEvent, progressEvent, replyEvent } from './turn-events.js';
import { collectOutbox, deliverInbox, withSkippedNote } from './turn-files.js';

/** What the turn runner needs of the model broker. */
export interface ModelChat {
  chat(request: {
    model: string;
    system: string;
    messages: ChatMessage[];
    signal?: AbortSignal;
  }): Promise<{ message: ChatMessage }>;
}

export interface TurnRunnerDeps {
  driver: SandboxDriver;
  broker: ModelChat;
  publish: (event: OutboundEvent) => Promise<void>;
  logger: Logger;
  systemPrompt: string;
  blobs: BlobStore;
  /** The network a conversation's sandbox joins (its grants); absent or undefined: none. */
  networkFor?: (conversation: ConversationId) => Promise<SandboxNetwork | undefined>;
  ledger: OutboxLedger;
  config: Pick<
    Config,
    | 'SANDBOT_FILE_MAX_BYTES'
    | 'SANDBOT_MODEL'
    | 'SANDBOX_TOOL_TIMEOUT_SECONDS'
    | 'SANDBOX_TOOL_OUTPUT_BYTES'
    | 'SANDBOX_TURN_TIMEOUT_SECONDS'
    | 'SANDBOT_MAX_MODEL_CALLS_PER_TURN'
  >;
}

export type TurnOutcome = 'replied' | 'failed' | 'stopped' | 'abandoned';

/** Protocol errors tolerated in one turn before the sandbox is judged to be misbehaving. */
const MAX_BAD_LINES = 50;

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
  const log = deps.logger.child({ conversation: turn.conversation, turnId: turn.turnId });
  await deps.publish(progressEvent(turn, 'start', 'working…'));
  let session: SandboxSession;
  try {
    session = await deps.driver.open(turn.conversation, { network: await deps.networkFor?.(turn.conversation) });
  } catch (error) {
    log.error({ err: error }, 'sandbox could not be opened');
    await deps.publish(errorEvent(turn, `Your sandbox could not be started: ${messageOf(error)}`));
    return 'failed';
  }
  const startedAt = Date.now();
  try {
    const missing = await deliverInbox(deps.driver, deps.blobs, turn);
    if (missing.length > 0) log.warn({ missing }, 'attachments expired before the turn');
    const result = await driveTurn(deps, turn, session, signals, log);
    if (result.kind === 'abandoned') return 'abandoned';
    if (result.kind === 'stopped') {
      await deps.publish(
        replyEvent(turn, `Stopped${result.by ? ` (asked by ${result.by})` : ''}.`, [], 'stopped'),
      );
      return 'stopped';
    }
    if (result.kind === 'reply') {
      const outbox = await collectOutbox(deps, turn, startedAt, deps.config.SANDBOT_FILE_MAX_BYTES);
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
  | { kind: 'stopped'; by: string }
  | { kind: 'abandoned' };

function driveTurn(
  deps: TurnRunnerDeps,
  turn: Turn,
  session: SandboxSession,
  { abandon, stop }: { abandon: AbortSignal; stop: AbortSignal },
  log: Logger,
): Promise<TurnResult> {
  const { config } = deps;
  // Each run of a turn gets its own protocol id: a rerun after a takeover must not take the old run's
  // lines (e.g. its turn_done) for its own. Outbound events keep the turn's id, for idempotency.
  const runId = `${turn.turnId}@${randomUUID().slice(0, 8)}`;
  const modelAbort = new AbortController();
  let lastAnswer: ChatMessage | undefined;
  let modelFailure: string | undefined;
  let modelCalls = 0;
  let toolSteps = 0;
  let badLines = 0;
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
      if (result.kind !== 'reply') session.send({ type: 'cancel', turnId: runId });
      resolve(result);
    };
    const timer = setTimeout(
      () =>
        finish({
          kind: 'error',
          message: `The turn took longer than ${config.SANDBOX_TURN_TIMEOUT_SECONDS} s and was stopped.`,
        }),
      config.SANDBOX_TURN_TIMEOUT_SECONDS * 1000,
    );
    cleanups.push(() => clearTimeout(timer));
    const onAbandon = () => finish({ kind: 'abandoned' });
    const onStop = () => finish({ kind: 'stopped', by: String(stop.reason ?? '') });
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
        if (!line.ok) {
          badLines += 1;
          log.warn({ error: line.error, line: line.line }, 'bad protocol line from sandbox');
          if (badLines > MAX_BAD_LINES) {
            finish({
              kind: 'error',
              message: 'Your sandbox sent too much malformed protocol data; the turn was stopped.',
            });
          }
          return;
        }
        const message: RuntimeToWorker = line.value;
        if ('turnId' in message && message.turnId !== undefined && message.turnId !== runId) return;
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
          case 'turn_done':
            // Wait for a model answer still being relayed, then decide from what the worker itself saw.
            void chain.then(() => finish(outcome()));
            return;
          case 'error':
            log.info({ message: message.message }, 'runtime reported an error');
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
      if (modelCalls >= config.SANDBOT_MAX_MODEL_CALLS_PER_TURN) {
        modelFailure = `The agent reached its limit of ${config.SANDBOT_MAX_MODEL_CALLS_PER_TURN} model calls for one turn.`;
        session.send({ type: 'model_error', turnId: runId, requestId, message: modelFailure });
        return;
      }
      modelCalls += 1;
      try {
        const { message } = await deps.broker.chat({
          model: config.SANDBOT_MODEL,
          system: deps.systemPrompt,
          messages,
          signal: modelAbort.signal,
        });
        lastAnswer = message;
        session.send({ type: 'model_response', turnId: runId, requestId, message });
      } catch (error) {
        if (modelAbort.signal.aborted) return;
        modelFailure = messageOf(error);
        session.send({ type: 'model_error', turnId: runId, requestId, message: modelFailure });
      }
    };

    session.send({
      type: 'turn',
      turnId: runId,
      messages: turn.messages.map((m) => ({ user: m.user.name ?? m.user.id, text: m.text })),
      limits: {
        toolTimeoutMs: config.SANDBOX_TOOL_TIMEOUT_SECONDS * 1000,
        toolOutputBytes: config.SANDBOX_TOOL_OUTPUT_BYTES,
      },
    });
  });
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
