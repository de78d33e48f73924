import { randomUUID } from 'node:crypto';
import type { SandboxSession } from '../../../sandbox/host/driver/types.js';
import type { Logger } from '../../contracts/log/logger.js';
import { modelFor } from '../../contracts/policy/model-rules.js';
import type { ChatMessage, WorkerToRuntime } from '../../contracts/protocol/agent.js';
import { type SkillToolDefinition, skillToolDefinition } from '../../contracts/protocol/skill-tools.js';
import type { Turn } from '../../shared/queue/conversation-store.js';
import type { TurnTrail } from '../audit/turn-trail.js';
import { fallbackNote } from '../broker/model-choice.js';
import type { TurnSkills } from '../skills/turn-skills.js';
import { HostCallLedger, relayHostTool } from './host-tool-relay.js';
import { stopReasonOf } from './stop-reason.js';
import type { TurnRunnerDeps } from './turn-deps.js';
import { progressEvent } from './turn-events.js';
import {
  initialTurnState,
  stepTurn,
  type TurnAction,
  type TurnEvent,
  type TurnResult,
  type TurnState,
  turnStartMessage,
} from './turn-machine.js';

/** What one turn's drive works with: the open sandbox, and the turn's audit trail, canary and skills. */
export interface TurnDriveContext {
  deps: TurnRunnerDeps;
  turn: Turn;
  session: SandboxSession;
  log: Logger;
  trail: TurnTrail;
  canary: string;
  skills?: TurnSkills;
  /** This run's protocol id; by default one is made up. */
  runId?: string;
}

/**
 * Runs the turn in the open sandbox until it ends: the I/O shell around the turn machine
 * (turn-machine.ts), which decides; this only listens, feeds it events and carries out its actions.
 */
export function driveTurn(
  context: TurnDriveContext,
  signals: { abandon: AbortSignal; stop: AbortSignal },
): Promise<TurnResult> {
  return new Promise<TurnResult>((resolve) => new TurnDrive(context, resolve).start(signals));
}

class TurnDrive {
  private state: TurnState;
  // Model requests are handled one at a time, in the order the runtime sent them.
  private chain: Promise<unknown> = Promise.resolve();
  private readonly cleanups: (() => void)[] = [];
  private readonly modelAbort = new AbortController();
  // Host tools offered in this turn, and the calls to them the model made (only those are carried out).
  private readonly hostOffer: Promise<SkillToolDefinition[]>;
  private readonly hostCalls = new HostCallLedger();
  // Set when the fallback model answered a request of this turn: the reply then says so.
  private fallbackNote?: string;
  // Numbers this turn's waits for the model server: progress ids come from the worker, not the sandbox.
  private modelWaits = 0;

  constructor(
    private readonly context: TurnDriveContext,
    private readonly resolve: (result: TurnResult) => void,
  ) {
    const { deps, turn, canary } = context;
    // Each run of a turn gets its own protocol id: a rerun after a takeover must not take the old run's
    // lines (e.g. its turn_done) for its own. Outbound events keep the turn's id, for idempotency.
    const runId = context.runId ?? newRunId(turn);
    this.state = initialTurnState(runId, canary, {
      modelCalls: deps.config.SANDBOT_MAX_MODEL_CALLS_PER_TURN,
      tokens: deps.config.SANDBOT_MAX_TOKENS_PER_TURN,
      seconds: deps.config.SANDBOX_TURN_TIMEOUT_SECONDS,
    });
    this.hostOffer = deps.hostTools?.offered(turn).catch(() => []) ?? Promise.resolve([]);
  }

  start({ abandon, stop }: { abandon: AbortSignal; stop: AbortSignal }): void {
    const { deps, turn, session, skills } = this.context;
    const { config } = deps;
    const timer = setTimeout(() => this.dispatch({ type: 'timed_out' }), this.state.budget.seconds * 1000);
    this.cleanups.push(() => clearTimeout(timer));
    const onAbandon = () => void this.dispatch({ type: 'abandoned' });
    const onStop = () => void this.dispatch({ type: 'stopped', reason: stopReasonOf(stop) });
    if (abandon.aborted || stop.aborted) {
      if (abandon.aborted) onAbandon();
      else onStop();
      return;
    }
    // What the sandbox wrote while no turn held it counts against this turn (and may trip the wire).
    const stray = session.betweenTurns?.().lines ?? 0;
    if (stray > 0) void this.dispatch({ type: 'stray_lines', lines: stray });
    if (this.state.result) return;
    abandon.addEventListener('abort', onAbandon, { once: true });
    stop.addEventListener('abort', onStop, { once: true });
    this.cleanups.push(() => abandon.removeEventListener('abort', onAbandon));
    this.cleanups.push(() => stop.removeEventListener('abort', onStop));
    this.cleanups.push(session.onClose((reason) => this.dispatch({ type: 'sandbox_closed', reason })));
    this.cleanups.push(session.onMessage((line) => this.dispatch({ type: 'line', line })));
    const limits = {
      toolTimeoutMs: config.SANDBOX_TOOL_TIMEOUT_SECONDS * 1000,
      toolOutputBytes: config.SANDBOX_TOOL_OUTPUT_BYTES,
    };
    this.send(turnStartMessage(this.state.runId, turn, limits, skills?.tools, skills?.access));
  }

  /** Steps the machine and carries out its actions; the promise is that of a model call begun, if any. */
  private dispatch(event: TurnEvent): Promise<void> | undefined {
    const { state, actions } = stepTurn(this.state, event);
    this.state = state;
    let modelCall: Promise<void> | undefined;
    for (const action of actions) {
      if (action.type === 'call_model') modelCall = this.callModel(action.requestId, action.messages);
      else this.perform(action);
    }
    return modelCall;
  }

  private perform(action: Exclude<TurnAction, { type: 'call_model' }>): void {
    const { deps, turn, log, trail } = this.context;
    switch (action.type) {
      case 'send':
        this.send(action.message);
        break;
      case 'tripwire':
        deps.tripwire?.(turn.conversation, action.reason);
        break;
      case 'limit_hit':
        trail.limitHit(action.limit, action.detail);
        break;
      case 'warn_unexpected_line':
        log.warn({ error: action.error }, 'unexpected protocol line');
        break;
      case 'log_runtime_error':
        log.info({ message: action.message }, 'runtime reported an error');
        break;
      case 'queue_model_request':
        this.chain = this.chain.then(() => this.dispatch({ ...action, type: 'model_request_due' }));
        break;
      case 'note_host_calls':
        this.hostCalls.noteAnswer(action.message);
        break;
      case 'relay_host_tool':
        void this.relayHostTool(action.request);
        break;
      case 'progress':
        void deps
          .publish(progressEvent(turn, action.step, action.text))
          .catch((error) => log.warn({ err: error }, 'progress not published'));
        break;
      case 'record_tool_finished':
        trail.toolFinished(action.result);
        break;
      case 'settle_model_requests':
        void this.chain.then(() => this.dispatch({ type: 'model_requests_settled' }));
        break;
      case 'end':
        for (const cleanup of this.cleanups) cleanup();
        this.modelAbort.abort();
        break;
      case 'resolve':
        this.resolve(withFallbackNote(action.result, this.fallbackNote));
        break;
    }
  }

  // A sandbox that is gone (stopped, engine restarted) cannot be told anything: the turn still ends.
  private send(message: WorkerToRuntime): void {
    try {
      this.context.session.send(message);
    } catch (error) {
      this.context.log.info({ err: error, type: message.type }, 'not sent: the sandbox is gone');
    }
  }

  private async callModel(requestId: string, messages: ChatMessage[]): Promise<void> {
    const { deps, trail, skills, turn } = this.context;
    const { SANDBOT_MODEL_RULES: rules = [], SANDBOT_MODEL: model } = deps.config;
    const chosen = modelFor(rules, model, turn.conversation);
    const call = trail.modelRequest(requestId, chosen, messages);
    try {
      const answer = await deps.broker.chat({
        model: chosen,
        system: skills ? skills.systemPrompt(deps.systemPrompt) : deps.systemPrompt,
        messages,
        signal: this.modelAbort.signal,
        onWait: (ahead) => this.waitingForModel(ahead),
        ...toolsOffered([...(skills?.tools.map(skillToolDefinition) ?? []), ...(await this.hostOffer)]),
        fit: {
          conversation: this.context.turn.conversation,
          // A summary of older messages is one more model call: only when the turn has one left.
          summaryAllowed: this.state.modelCalls < this.state.budget.modelCalls,
          onFold: (event) => trail.contextFolded?.(event),
        },
      });
      call.answered(answer);
      if (answer.fallback && answer.model) {
        this.fallbackNote = fallbackNote(answer.model, answer.fallback.chosen, answer.fallback.reason);
      }
      this.dispatch({ type: 'model_answered', requestId, answer });
    } catch (error) {
      const cancelled = this.modelAbort.signal.aborted;
      call.failed(cancelled ? 'cancelled: the turn ended' : messageOf(error));
      this.dispatch({ type: 'model_failed', requestId, error: messageOf(error), cancelled });
    }
  }

  /** The model server is busy: the user is told, not left to wonder (the wait is not the model's time). */
  private waitingForModel(ahead: number): void {
    const { deps, turn, log } = this.context;
    const text = `waiting for the model (${ahead > 0 ? `${ahead} ahead` : 'next in line'})…`;
    void deps
      .publish(progressEvent(turn, `model-wait:${++this.modelWaits}`, text))
      .catch((error) => log.warn({ err: error }, 'progress not published'));
  }

  private relayHostTool(request: Extract<TurnAction, { type: 'relay_host_tool' }>['request']): Promise<void> {
    const { deps, turn, log } = this.context;
    return relayHostTool({
      hostTools: deps.hostTools,
      ledger: this.hostCalls,
      turn,
      request,
      signal: this.modelAbort.signal,
      send: (message) => this.send(message),
      log,
    });
  }
}

/** A protocol id for one run of a turn (or a /run): the turn's id and a random suffix. */
export function newRunId(turn: Pick<Turn, 'turnId'>): string {
  return `${turn.turnId}@${randomUUID().slice(0, 8)}`;
}

/** A reply some of which the fallback model wrote says so at its end. */
function withFallbackNote(result: TurnResult, note: string | undefined): TurnResult {
  return note && result.kind === 'reply' ? { ...result, text: `${result.text}\n\n${note}` } : result;
}

/** Tools besides the built-in ones, when there are any (the broker then offers them too). */
function toolsOffered(tools: SkillToolDefinition[]): { tools?: SkillToolDefinition[] } {
  return tools.length ? { tools } : {};
}

export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
