import { randomUUID } from 'node:crypto';
import type { z } from 'zod';
import type { ChatMessage, RuntimeToWorker, TurnStart } from '../../src/contracts/protocol/agent.js';
import { loadHistory, saveHistory } from './history.js';
import {
  boundHistory,
  clipArgs,
  clipMessage,
  type HistoryBounds,
  userChatMessages,
} from './history-bounds.js';
import { type AskHost, startHostCalls } from './host-calls.js';
import type { Privilege } from './privilege.js';
import type { ReadyShells } from './tools/ready-shell.js';
import { describeCall, runTool } from './tools/run-tool.js';

export type ModelAnswer =
  | { kind: 'response'; message: ChatMessage }
  | { kind: 'error'; message: string }
  | { kind: 'aborted' };

export interface TurnLimits {
  /** What one model request may carry (it must fit in one protocol line). */
  request: HistoryBounds;
  /** What is kept on disk between turns. */
  stored: HistoryBounds;
  /** Any single message entering the history is shrunk to this many bytes. */
  messageBytes: number;
  /** Upper bound on a tool's output, whatever the turn asks (keeps tool_finished within a line). */
  toolOutputBytes: number;
}

export interface TurnDeps {
  turn: z.infer<typeof TurnStart>;
  signal: AbortSignal;
  workspace: string;
  session: string;
  limits: TurnLimits;
  shell?: { file: string; args: string[] };
  /** The shell started ahead of the next bash call, when the runtime keeps one. */
  shells?: ReadyShells;
  /** Where skills are mounted; default /skills. */
  skillsRoot?: string;
  /** The runtime started as root: its children go to their own uids (privilege.ts). */
  privilege?: Privilege;
  /** Emits a line for this turn; silently dropped once the turn is cancelled. */
  send(message: RuntimeToWorker): void;
  /** Sends a model_request and resolves with the worker's answer to it (or `aborted`). */
  askModel(requestId: string, messages: ChatMessage[]): Promise<ModelAnswer>;
  /** Has the worker carry out a host tool call (e.g. `delegate`); absent: host tools are unknown here. */
  askHost?: AskHost;
}

/**
 * One turn of the agent loop: ask the model, run the tools it calls, feed the results back, until it
 * answers without tool calls. Only a completed turn is saved, so a failed or cancelled turn can be
 * retried from the same history.
 */
export async function runTurn(deps: TurnDeps): Promise<void> {
  const { turn, signal, send, limits } = deps;
  const turnId = turn.turnId;
  const loaded = loadHistory(deps.session);
  if (loaded.problem) send({ type: 'progress', turnId, text: `Starting afresh: ${loaded.problem}.` });
  const history = [...loaded.messages];
  for (const message of userChatMessages(turn.messages))
    history.push(clipMessage(message, limits.messageBytes));

  for (;;) {
    const answer = await deps.askModel(randomUUID(), boundHistory(history, limits.request));
    if (signal.aborted || answer.kind === 'aborted') return;
    if (answer.kind === 'error') {
      send({ type: 'error', turnId, message: `model request failed: ${answer.message}`.slice(0, 4000) });
      send({ type: 'turn_done', turnId });
      return;
    }
    const reply: ChatMessage = clipMessage({ ...answer.message, role: 'assistant' }, limits.messageBytes);
    history.push(reply);
    const calls = reply.tool_calls ?? [];
    if (calls.length === 0) {
      send({ type: 'reply', turnId, text: reply.content });
      try {
        saveHistory(deps.session, boundHistory(history, limits.stored));
      } catch (err) {
        send({ type: 'error', turnId, message: `could not save the history: ${(err as Error).message}` });
      }
      send({ type: 'turn_done', turnId });
      return;
    }
    // Host tools (e.g. delegate) run outside the sandbox, all at once; results are taken in call order.
    const outputBytes = Math.min(turn.limits.toolOutputBytes, limits.toolOutputBytes);
    const hosted = startHostCalls(calls, deps.askHost, outputBytes);
    for (const call of calls) {
      const { name, arguments: args } = call.function;
      const callId = randomUUID();
      send({ type: 'progress', turnId, text: describeCall(name, args) });
      send({ type: 'tool_started', turnId, callId, name, args: clipArgs(args, 2000) });
      const result =
        (await hosted.get(call)) ??
        (await runTool(name, args, {
          workspace: deps.workspace,
          timeoutMs: turn.limits.toolTimeoutMs,
          outputBytes: Math.min(turn.limits.toolOutputBytes, limits.toolOutputBytes),
          signal,
          shell: deps.shell,
          shells: deps.shells,
          skillTools: turn.tools,
          skillsRoot: deps.skillsRoot,
          privilege: deps.privilege,
          skillAccess: turn.skillAccess,
        }));
      if (signal.aborted) return;
      send({ type: 'tool_finished', turnId, callId, name, ...result });
      history.push(
        clipMessage({ role: 'tool', tool_name: name, content: result.output }, limits.messageBytes),
      );
    }
  }
}
