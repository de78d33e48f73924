import type { z } from 'zod';
import type { Logger } from '../../contracts/log/logger.js';
import type { ChatMessage, HostToolRequest, WorkerToRuntime } from '../../contracts/protocol/agent.js';
import { type HostToolName, isHostTool } from '../../contracts/protocol/host-tools.js';
import type { SkillToolDefinition } from '../../contracts/protocol/skill-tools.js';
import type { Turn } from '../../shared/queue/conversation-store.js';

/** One host tool call to carry out (the model made it; the worker checked that). */
export interface HostCall {
  turn: Turn;
  name: HostToolName;
  args: Record<string, unknown>;
  /** Aborted when the turn ends (stopped, killed, timed out, finished). */
  signal: AbortSignal;
}

/** What the turn runner needs of the worker's host tools (src/worker/delegation/delegation.ts). */
export interface HostTools {
  /** The host tools offered to the model in this turn (e.g. `delegate` within the depth limit). */
  offered(turn: Turn): Promise<SkillToolDefinition[]>;
  run(call: HostCall): Promise<{ ok: boolean; output: string }>;
}

/** JSON with sorted keys, so the same arguments compare equal whatever their order. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/**
 * The host tool calls the model made in this turn, as the worker received them from the model itself.
 * A `host_tool_request` from the sandbox is carried out only if it matches one of them, once: whatever
 * runs in the sandbox cannot start a sub-agent the model did not ask for.
 */
export class HostCallLedger {
  private readonly open: { name: string; args: string }[] = [];

  noteAnswer(message: ChatMessage): void {
    for (const call of message.tool_calls ?? []) {
      if (isHostTool(call.function.name)) {
        this.open.push({ name: call.function.name, args: canonicalJson(call.function.arguments) });
      }
    }
  }

  /** True (and forgotten) when the model made this call and it was not taken before. */
  take(name: string, args: Record<string, unknown>): boolean {
    const wanted = canonicalJson(args);
    const index = this.open.findIndex((call) => call.name === name && call.args === wanted);
    if (index < 0) return false;
    this.open.splice(index, 1);
    return true;
  }
}

/**
 * Answers one `host_tool_request`: carried out when the model made the call, refused otherwise, and
 * any failure turned into words for the model. Nothing is sent once the turn has ended.
 */
export async function relayHostTool(options: {
  hostTools: HostTools | undefined;
  ledger: HostCallLedger;
  turn: Turn;
  request: z.infer<typeof HostToolRequest>;
  signal: AbortSignal;
  send: (message: WorkerToRuntime) => void;
  log: Logger;
}): Promise<void> {
  const { request, hostTools, signal } = options;
  let result: { ok: boolean; output: string };
  if (!hostTools || !isHostTool(request.name)) {
    result = { ok: false, output: `unknown tool "${request.name}": it is not available here` };
  } else if (!options.ledger.take(request.name, request.args)) {
    options.log.warn({ name: request.name }, 'host tool request the model did not make: refused');
    result = { ok: false, output: `${request.name} refused: the model made no such call in this turn` };
  } else {
    result = await hostTools
      .run({ turn: options.turn, name: request.name, args: request.args, signal })
      .catch((error: unknown) => ({
        ok: false,
        output: `${request.name} failed: ${error instanceof Error ? error.message : String(error)}`,
      }));
  }
  if (signal.aborted) return;
  options.send({ type: 'host_tool_result', turnId: request.turnId, requestId: request.requestId, ...result });
}
