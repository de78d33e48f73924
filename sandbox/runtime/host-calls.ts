import { randomUUID } from 'node:crypto';
import type { z } from 'zod';
import type { HostToolResult, RuntimeToWorker, ToolCall } from '../../src/contracts/protocol/agent.js';
import { isHostTool } from '../../src/contracts/protocol/host-tools.js';
import { capText } from './output-cap.js';
import type { ToolResult } from './tools/types.js';

export type AskHost = (name: string, args: Record<string, unknown>) => Promise<ToolResult>;

/**
 * Tool calls the worker carries out (host tools, e.g. `delegate`): each is sent as a
 * `host_tool_request` and settled by the worker's `host_tool_result`, or by the turn ending.
 */
export class HostCalls {
  private readonly waiting = new Map<string, { turnId: string; settle: (result: ToolResult) => void }>();

  ask(
    turnId: string,
    name: string,
    args: Record<string, unknown>,
    signal: AbortSignal,
    send: (message: RuntimeToWorker) => void,
  ): Promise<ToolResult> {
    return new Promise((resolve) => {
      const cancelled = { ok: false, output: `${name} was cancelled: the turn ended`, truncated: false };
      if (signal.aborted) return resolve(cancelled);
      const requestId = randomUUID();
      const onAbort = () => {
        this.waiting.delete(requestId);
        resolve(cancelled);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiting.set(requestId, {
        turnId,
        settle: (result) => {
          signal.removeEventListener('abort', onAbort);
          resolve(result);
        },
      });
      send({ type: 'host_tool_request', turnId, requestId, name, args });
    });
  }

  /** Settles the request the worker answered; false when no such request of that turn is waiting. */
  answer(message: z.infer<typeof HostToolResult>): boolean {
    const waiter = this.waiting.get(message.requestId);
    if (!waiter || waiter.turnId !== message.turnId) return false;
    this.waiting.delete(message.requestId);
    waiter.settle({ ok: message.ok, output: message.output, truncated: false });
    return true;
  }
}

/**
 * Starts every host tool call of one model answer at once (so sub-agents work in parallel); the turn
 * then takes the results in the order of the calls.
 */
export function startHostCalls(
  calls: readonly ToolCall[],
  ask: AskHost | undefined,
  outputBytes: number,
): Map<ToolCall, Promise<ToolResult>> {
  const started = new Map<ToolCall, Promise<ToolResult>>();
  if (!ask) return started;
  for (const call of calls) {
    if (!isHostTool(call.function.name)) continue;
    const result = ask(call.function.name, call.function.arguments).then((r) => {
      const capped = capText(r.output, outputBytes);
      return { ok: r.ok, output: capped.text, truncated: r.truncated || capped.truncated };
    });
    started.set(call, result);
  }
  return started;
}
