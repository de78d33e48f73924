import type { ChatMessage, RuntimeToWorker, WorkerToRuntime } from '../../contracts/protocol/agent.js';
import type { LineResult } from '../../contracts/protocol/lines.js';
import type { SkillAccess, SkillToolSpec } from '../../contracts/protocol/skill-tools.js';
import type { Turn } from '../../shared/queue/conversation-store.js';
import type { StopReason } from './stop-reason.js';

/**
 * What the turn machine (turn-machine.ts) works in: its state, the events fed to it, the actions it
 * returns, and how a turn starts. Apart from the machine so the shell and tests can name them alone.
 */

export type TurnResult =
  | { kind: 'reply'; text: string }
  /** `timedOut`: it ran past its wall time (the runtime may no longer read anything, the cancel too). */
  | { kind: 'error'; message: string; timedOut?: true }
  | { kind: 'stopped'; reason: StopReason }
  | { kind: 'abandoned' };

export interface TurnBudget {
  modelCalls: number;
  tokens: number;
  seconds: number;
}

export interface ModelAnswer {
  message: ChatMessage;
  promptTokens?: number;
  completionTokens?: number;
  /** Requests the broker made for it (retries after an unreadable tool call): each counts. */
  modelCalls?: number;
}

type HostToolRequest = Extract<RuntimeToWorker, { type: 'host_tool_request' }>;
type ToolFinished = Extract<RuntimeToWorker, { type: 'tool_finished' }>;

export interface TurnState {
  /** This run's protocol id (lines for any other id are foreign). */
  readonly runId: string;
  /** The conversation's canary token; '' when there is none. */
  readonly canary: string;
  readonly budget: TurnBudget;
  readonly lines: number;
  readonly badLines: number;
  readonly toolSteps: number;
  readonly modelCalls: number;
  readonly tokens: number;
  /** The last model answer relayed to the sandbox: the reply, if the turn ends on it. */
  readonly lastAnswer?: ChatMessage;
  /** Why the model could not answer (a budget, or the broker's error): the turn then fails with it. */
  readonly modelFailure?: string;
  /** Set once, when the turn is over. */
  readonly result?: TurnResult;
}

export type TurnEvent =
  /** A line from the sandbox, parsed or not. */
  | { type: 'line'; line: LineResult<RuntimeToWorker> }
  /** Lines the sandbox wrote while no turn held it (since the last one): all suspect. */
  | { type: 'stray_lines'; lines: number }
  /** A model request's turn has come (they are answered one at a time, in the order sent). */
  | { type: 'model_request_due'; requestId: string; messages: ChatMessage[] }
  | { type: 'model_answered'; requestId: string; answer: ModelAnswer }
  /** The broker failed; `cancelled` when because the turn had ended. */
  | { type: 'model_failed'; requestId: string; error: string; cancelled: boolean }
  /** After `turn_done`: every model request sent before it has been dealt with. */
  | { type: 'model_requests_settled' }
  | { type: 'timed_out' }
  | { type: 'abandoned' }
  | { type: 'stopped'; reason: StopReason }
  | { type: 'sandbox_closed'; reason: string };

export type TurnAction =
  | { type: 'send'; message: WorkerToRuntime }
  | { type: 'tripwire'; reason: string }
  | { type: 'limit_hit'; limit: string; detail: Record<string, number> }
  | { type: 'warn_unexpected_line'; error: string }
  | { type: 'log_runtime_error'; message: string }
  /** Feed `model_request_due` once the requests queued before it are dealt with. */
  | { type: 'queue_model_request'; requestId: string; messages: ChatMessage[] }
  /** Ask the broker; feed `model_answered` or `model_failed`. */
  | { type: 'call_model'; requestId: string; messages: ChatMessage[] }
  /** The host tool calls the model made: only those are carried out when the sandbox asks. */
  | { type: 'note_host_calls'; message: ChatMessage }
  | { type: 'relay_host_tool'; request: HostToolRequest }
  | { type: 'progress'; step: string; text: string }
  | { type: 'record_tool_finished'; result: ToolFinished }
  /** Feed `model_requests_settled` once the queued model requests are dealt with. */
  | { type: 'settle_model_requests' }
  /** Stop listening to the sandbox and the clock, and abort the model and host calls in flight. */
  | { type: 'end' }
  | { type: 'resolve'; result: TurnResult };

export interface TurnStep {
  state: TurnState;
  actions: TurnAction[];
}

export function initialTurnState(runId: string, canary: string, budget: TurnBudget): TurnState {
  return { runId, canary, budget, lines: 0, badLines: 0, toolSteps: 0, modelCalls: 0, tokens: 0 };
}

/** The message that starts the turn in the sandbox. */
export function turnStartMessage(
  runId: string,
  turn: Turn,
  limits: { toolTimeoutMs: number; toolOutputBytes: number },
  tools: SkillToolSpec[] = [],
  skillAccess: SkillAccess[] = [],
): WorkerToRuntime {
  return {
    type: 'turn',
    turnId: runId,
    messages: turn.messages.map((m) => ({ user: m.user.name ?? m.user.id, text: m.text })),
    limits,
    ...(tools.length ? { tools } : {}),
    ...(skillAccess.length ? { skillAccess } : {}),
  };
}
