import type { ChatMessage, RuntimeToWorker } from '../../contracts/protocol/agent.js';
import type { LineResult } from '../../contracts/protocol/lines.js';
import { carriesCanary, touchesCanary } from './canary.js';
import { describeToolStep } from './turn-events.js';
import type { ModelAnswer, TurnAction, TurnEvent, TurnResult, TurnState, TurnStep } from './turn-state.js';

/**
 * One chat turn as a state machine: `stepTurn(state, event)` decides, without any I/O, what the turn's
 * budgets and tripwires allow and what happens next; the shell (turn-drive.ts) feeds it what the
 * sandbox, the model and the clock say, and carries out the actions it returns, in order.
 */

// Importers name the machine's vocabulary from here too.
export {
  initialTurnState,
  type ModelAnswer,
  type TurnAction,
  type TurnBudget,
  type TurnEvent,
  type TurnResult,
  type TurnState,
  type TurnStep,
  turnStartMessage,
} from './turn-state.js';

/** Protocol errors tolerated in one turn before the sandbox is judged to be misbehaving. */
export const MAX_BAD_LINES = 50;
/** Lines of any kind in one turn: far above what a turn within its model-call budget sends. */
export const MAX_LINES_PER_TURN = 5000;
/** Unexpected lines logged per turn: the rest are only counted (a flood must not flood the log). */
const LOGGED_BAD_LINES = 20;

export function stepTurn(state: TurnState, event: TurnEvent): TurnStep {
  switch (event.type) {
    case 'line':
      return state.result ? unchanged(state) : onLine(state, event.line);
    case 'stray_lines':
      return state.result ? unchanged(state) : onStrayLines(state, event.lines);
    case 'model_request_due':
      return onModelRequest(state, event.requestId, event.messages);
    case 'model_answered':
      return onModelAnswer(state, event.requestId, event.answer);
    case 'model_failed':
      if (event.cancelled) return unchanged(state);
      return {
        state: { ...state, modelFailure: event.error },
        actions: [modelError(state, event.requestId, event.error)],
      };
    case 'model_requests_settled':
      return finish(state, outcomeOf(state));
    case 'timed_out':
      return onTimeout(state);
    case 'abandoned':
      return finish(state, { kind: 'abandoned' });
    case 'stopped':
      return finish(state, { kind: 'stopped', reason: event.reason });
    case 'sandbox_closed':
      return finish(state, {
        kind: 'error',
        message: `Your sandbox stopped during the turn (${event.reason}).`,
      });
  }
}

/** How the turn ends once the runtime says it is done, from what the worker itself saw. */
export function outcomeOf(state: TurnState): TurnResult {
  if (state.modelFailure) return { kind: 'error', message: state.modelFailure };
  const text = state.lastAnswer?.content.trim();
  if (state.lastAnswer && !state.lastAnswer.tool_calls?.length && text) return { kind: 'reply', text };
  return { kind: 'error', message: 'The agent ended its turn without an answer.' };
}

/** Why the line counts amount to protocol abuse, if they do. */
export function protocolAbuse(lines: number, badLines: number): string | undefined {
  if (badLines > MAX_BAD_LINES)
    return `protocol abuse: over ${MAX_BAD_LINES} malformed or foreign lines or invalid egress frames in one turn`;
  if (lines > MAX_LINES_PER_TURN) return `protocol abuse: over ${MAX_LINES_PER_TURN} lines in one turn`;
  return undefined;
}

const unchanged = (state: TurnState): TurnStep => ({ state, actions: [] });

/** Ends the turn (once: whatever comes second is too late). Only a reply leaves the runtime be. */
function finish(state: TurnState, result: TurnResult): TurnStep {
  if (state.result) return unchanged(state);
  const cancel: TurnAction[] =
    result.kind === 'reply' ? [] : [{ type: 'send', message: { type: 'cancel', turnId: state.runId } }];
  return { state: { ...state, result }, actions: [{ type: 'end' }, ...cancel, { type: 'resolve', result }] };
}

function onTimeout(state: TurnState): TurnStep {
  if (state.result) return unchanged(state);
  const { seconds } = state.budget;
  const ended = finish(state, {
    kind: 'error',
    message: `The turn took longer than ${seconds} s and was stopped.`,
    timedOut: true,
  });
  return {
    state: ended.state,
    actions: [{ type: 'limit_hit', limit: 'turn_timeout', detail: { seconds } }, ...ended.actions],
  };
}

/** Written between turns, nothing of the runtime's is expected: they count as this turn's foreign lines. */
function onStrayLines(state: TurnState, lines: number): TurnStep {
  const counted = { ...state, lines: state.lines + lines, badLines: state.badLines + lines };
  const abuse = protocolAbuse(counted.lines, counted.badLines);
  if (!abuse) return { state: counted, actions: [] };
  const reason = `${abuse} (${lines} written between turns)`;
  const ended = finish(counted, { kind: 'stopped', reason: { kind: 'kill', by: 'tripwire', reason } });
  return { state: ended.state, actions: [{ type: 'tripwire', reason }, ...ended.actions] };
}

function onLine(state: TurnState, line: LineResult<RuntimeToWorker>): TurnStep {
  const message = line.ok ? line.value : undefined;
  // Lines that are malformed, or well-formed but not about this run (forged, or leftovers), are
  // suspect; a turn's own traffic is a few hundred lines at most.
  const foreign = !message || !('turnId' in message) || message.turnId !== state.runId;
  const counted = { ...state, lines: state.lines + 1, badLines: state.badLines + (foreign ? 1 : 0) };
  const warned: TurnAction[] =
    foreign && counted.badLines <= LOGGED_BAD_LINES
      ? [{ type: 'warn_unexpected_line', error: line.ok ? 'not for this turn' : line.error }]
      : [];
  const abuse = protocolAbuse(counted.lines, counted.badLines);
  if (abuse) {
    // Protocol abuse is a tripwire: the sandbox is killed and the conversation quarantined.
    const ended = finish(counted, {
      kind: 'stopped',
      reason: { kind: 'kill', by: 'tripwire', reason: abuse },
    });
    return {
      state: ended.state,
      actions: [...warned, { type: 'tripwire', reason: abuse }, ...ended.actions],
    };
  }
  if (!message || foreign) return { state: counted, actions: warned };
  const handled = onMessage(counted, message);
  return { state: handled.state, actions: [...warned, ...handled.actions] };
}

function onMessage(state: TurnState, message: RuntimeToWorker): TurnStep {
  switch (message.type) {
    case 'model_request':
      return {
        state,
        actions: [{ type: 'queue_model_request', requestId: message.requestId, messages: message.messages }],
      };
    case 'tool_started': {
      const toolSteps = state.toolSteps + 1;
      const text = describeToolStep(message.name, message.args);
      return {
        state: { ...state, toolSteps },
        actions: [{ type: 'progress', step: `tool:${toolSteps}`, text }],
      };
    }
    case 'host_tool_request':
      return { state, actions: [{ type: 'relay_host_tool', request: message }] };
    case 'tool_finished':
      return { state, actions: [{ type: 'record_tool_finished', result: message }] };
    case 'turn_done':
      // Wait for a model answer still being relayed, then decide from what the worker itself saw.
      return { state, actions: [{ type: 'settle_model_requests' }] };
    case 'error':
      return { state, actions: [{ type: 'log_runtime_error', message: message.message.slice(0, 300) }] };
    default:
      return unchanged(state);
  }
}

function onModelRequest(state: TurnState, requestId: string, messages: ChatMessage[]): TurnStep {
  if (state.canary && carriesCanary(messages, state.canary)) {
    return { state, actions: [{ type: 'tripwire', reason: 'the agent read the canary credentials file' }] };
  }
  const { budget } = state;
  if (state.modelCalls >= budget.modelCalls) {
    const failure = `The agent reached its limit of ${budget.modelCalls} model calls for one turn.`;
    return refuse(state, requestId, failure, 'model_calls_per_turn', { max: budget.modelCalls });
  }
  if (state.tokens >= budget.tokens) {
    const failure = `The agent used its budget of ${budget.tokens} model tokens for one turn.`;
    return refuse(state, requestId, failure, 'tokens_per_turn', { max: budget.tokens, used: state.tokens });
  }
  return {
    state: { ...state, modelCalls: state.modelCalls + 1 },
    actions: [{ type: 'call_model', requestId, messages }],
  };
}

/** A budget is spent: the model is not asked, and the turn will fail with why. */
function refuse(
  state: TurnState,
  requestId: string,
  failure: string,
  limit: string,
  detail: Record<string, number>,
): TurnStep {
  return {
    state: { ...state, modelFailure: failure },
    actions: [{ type: 'limit_hit', limit, detail }, modelError(state, requestId, failure)],
  };
}

function onModelAnswer(state: TurnState, requestId: string, answer: ModelAnswer): TurnStep {
  const tokens = state.tokens + (answer.promptTokens ?? 0) + (answer.completionTokens ?? 0);
  const modelCalls = state.modelCalls + Math.max(0, (answer.modelCalls ?? 1) - 1);
  const { message } = answer;
  if (state.canary && touchesCanary(message.tool_calls)) {
    // Not relayed: the sandbox never gets a tool call that goes for the canary.
    return {
      state: { ...state, tokens, modelCalls },
      actions: [{ type: 'tripwire', reason: 'the agent went for the canary credentials file' }],
    };
  }
  return {
    state: { ...state, tokens, modelCalls, lastAnswer: message },
    actions: [
      { type: 'note_host_calls', message },
      { type: 'send', message: { type: 'model_response', turnId: state.runId, requestId, message } },
    ],
  };
}

function modelError(state: TurnState, requestId: string, message: string): TurnAction {
  return { type: 'send', message: { type: 'model_error', turnId: state.runId, requestId, message } };
}
