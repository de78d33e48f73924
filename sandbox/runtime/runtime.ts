import { randomUUID } from 'node:crypto';
import type { z } from 'zod';
import {
  type ChatMessage,
  type ModelError,
  type ModelResponse,
  type RunCommand,
  RuntimeToWorker,
  type TurnStart,
  type WorkerToRuntime,
} from '../../src/contracts/protocol/agent.js';
import type { LineResult } from '../../src/contracts/protocol/lines.js';
import type { SkillAccess } from '../../src/contracts/protocol/skill-tools.js';
import { type ModelAnswer, runTurn, type TurnLimits } from './agent-turn.js';
import { EgressTunnelEnd } from './egress-tunnel.js';
import { clipArgs } from './history-bounds.js';
import { HostCalls } from './host-calls.js';
import type { Privilege } from './privilege.js';
import { findShell } from './tools/bash.js';
import { ReadyShells } from './tools/ready-shell.js';
import { runTool } from './tools/run-tool.js';
import { reapTurn, skillOfConnection } from './turn-uids.js';

export const RUNTIME_VERSION = 'sandbot-runtime/0.1.0';

export interface RuntimeOptions {
  workspace: string;
  session: string;
  /** The longest protocol line; outgoing lines are kept well below it too. */
  maxLineBytes: number;
  /**
   * Writes one message as a line to the worker; `frameKey` is the key the worker gave in `hello`
   * ('' until then), for the parts of long lines (src/contracts/protocol/frames.ts).
   */
  write(message: RuntimeToWorker, frameKey: string): void;
  /** Kill every other process of the agent at the end of each turn (in the sandbox only). */
  reapStrays?: boolean;
  shell?: { file: string; args: string[] };
  /** Where skills are mounted; default /skills. */
  skillsRoot?: string;
  /** Keep a bash started ahead of the next bash tool call (in the sandbox: see tools/ready-shell.ts). */
  readyShell?: boolean;
  /** Listen for the egress tunnel on this loopback port (--egress-port: granted sandboxes of tunnelled layers). */
  egressPort?: number;
  /** Started as root (--agent-uid): tools run as their own uids, and the reaper takes all of them. */
  privilege?: Privilege;
}

interface ActiveTurn {
  turnId: string;
  controller: AbortController;
  done: Promise<void>;
}

/** What one runtime keeps apart from the turn it runs: bounds derived from the line size. */
export function turnLimitsFor(maxLineBytes: number): TurnLimits {
  const requestBytes = Math.floor(maxLineBytes * 0.75);
  return {
    request: { maxMessages: 400, maxBytes: requestBytes },
    stored: { maxMessages: 2000, maxBytes: Math.max(8 * 1024 * 1024, 4 * requestBytes) },
    messageBytes: Math.max(1024, Math.floor(maxLineBytes / 8)),
    toolOutputBytes: Math.max(256, Math.floor(maxLineBytes / 4)),
  };
}

/**
 * The agent runtime's protocol side: takes the worker's messages, runs at most one turn at a time,
 * and routes model answers to the turn waiting for them. Nothing the worker sends can make it throw.
 */
export class Runtime {
  private active: ActiveTurn | undefined;
  private readonly waiting = new Map<string, { turnId: string; settle: (answer: ModelAnswer) => void }>();
  private readonly limits: TurnLimits;
  private readonly host = new HostCalls();
  private readonly shells: ReadyShells | undefined;
  private readonly egress: EgressTunnelEnd | undefined;
  /** A tool ran since the last reaping: only tools start processes. */
  private toolsRan = false;
  /** The running turn's skills with their own uids (and, on a bridge, credentials). */
  private skillAccess: readonly SkillAccess[] = [];
  private frameKey = '';
  /** The last job's turn id: the worker's cancel of a job that just ended needs no answer. */
  private lastTurnId: string | undefined;

  constructor(private readonly options: RuntimeOptions) {
    this.limits = turnLimitsFor(options.maxLineBytes);
    this.shells = options.readyShell ? new ReadyShells(options.privilege) : undefined;
    const port = options.egressPort;
    this.egress = port
      ? new EgressTunnelEnd(
          port,
          (frame) => this.emit(frame),
          // Which skill's tools (by uid) opened a connection: only a runtime with privilege has such uids.
          (socket) => (options.privilege ? skillOfConnection(socket, port, this.skillAccess) : undefined),
        )
      : undefined;
  }

  start(): void {
    this.egress?.listen((message) => this.protocolError(message));
    this.emit({ type: 'ready', version: RUNTIME_VERSION });
    this.shells?.prepare(this.options.shell ?? findShell(), this.options.workspace);
  }

  receive(result: LineResult<WorkerToRuntime>): void {
    if (!result.ok) {
      const where = result.line === undefined ? '' : ` (line began: ${result.line})`;
      this.protocolError(`${result.error}${where}; the line was ignored`);
      return;
    }
    const message = result.value;
    switch (message.type) {
      case 'hello':
        if (message.frameKey) this.frameKey = message.frameKey;
        this.emit({ type: 'ready', version: RUNTIME_VERSION });
        return;
      case 'turn':
        this.startTurn(message);
        return;
      case 'run':
        this.startRun(message);
        return;
      case 'cancel':
        if (this.active?.turnId === message.turnId) this.cancelActive();
        // The worker cancels every turn that did not end in a reply, also one that just ended here:
        // nothing to do, and nothing to say (a line between turns counts against the sandbox).
        else if (message.turnId === this.lastTurnId) return;
        else this.protocolError(`cancel for turn ${message.turnId} ignored: that turn is not running`);
        return;
      case 'model_response':
      case 'model_error':
        this.answer(message);
        return;
      case 'host_tool_result':
        if (!this.host.answer(message)) {
          this.protocolError(
            `host_tool_result for request ${message.requestId} of turn ${message.turnId} ignored: no such request is waiting`,
          );
        }
        return;
      case 'egress_data':
      case 'egress_ack':
      case 'egress_end':
      case 'egress_close':
        if (this.egress) this.egress.receive(message);
        else this.protocolError(`${message.type} ignored: this sandbox has no egress tunnel`);
        return;
    }
  }

  /** Stops the running turn, if any, and waits until its tool processes are gone. */
  async shutdown(): Promise<void> {
    this.shells?.close();
    this.egress?.close();
    const active = this.active;
    if (!active) return;
    active.controller.abort();
    await active.done;
  }

  private startTurn(turn: z.infer<typeof TurnStart>): void {
    this.skillAccess = turn.skillAccess ?? [];
    this.startJob(turn.turnId, (signal, send) =>
      runTurn({
        turn,
        signal,
        workspace: this.options.workspace,
        session: this.options.session,
        limits: this.limits,
        shell: this.options.shell,
        shells: this.shells,
        skillsRoot: this.options.skillsRoot,
        privilege: this.options.privilege,
        send,
        askModel: (requestId, messages) => this.askModel(turn.turnId, requestId, messages, signal),
        askHost: (name, args) => this.host.ask(turn.turnId, name, args, signal, send),
      }),
    );
  }

  private startRun(run: z.infer<typeof RunCommand>): void {
    this.startJob(run.turnId, async (signal, send) => {
      const callId = randomUUID();
      const args = { command: run.command };
      send({ type: 'tool_started', turnId: run.turnId, callId, name: 'bash', args: clipArgs(args, 2000) });
      const result = await runTool('bash', args, {
        workspace: this.options.workspace,
        timeoutMs: run.limits.toolTimeoutMs,
        outputBytes: Math.min(run.limits.toolOutputBytes, this.limits.toolOutputBytes),
        signal,
        shell: this.options.shell,
        shells: this.shells,
        privilege: this.options.privilege,
      });
      send({ type: 'tool_finished', turnId: run.turnId, callId, name: 'bash', ...result });
      send({ type: 'turn_done', turnId: run.turnId });
    });
  }

  /** One job (turn or run) at a time: a new one replaces the running one, which ends unsaved. */
  private startJob(
    turnId: string,
    body: (signal: AbortSignal, send: (message: RuntimeToWorker) => void) => Promise<void>,
  ): void {
    if (this.active) this.cancelActive();
    this.lastTurnId = turnId;
    const controller = new AbortController();
    let doneLine: RuntimeToWorker | undefined;
    const send = (message: RuntimeToWorker) => {
      if (controller.signal.aborted) return;
      if (message.type === 'tool_started') this.toolsRan = true;
      // turn_done waits until the strays are reaped: once the worker sees it, nothing of the turn's
      // still runs, so the workspace it then snapshots stays as it is until the next turn.
      if (message.type === 'turn_done') doneLine = message;
      else this.emit(message);
    };
    const done = body(controller.signal, send)
      .catch((err: unknown) => {
        send({ type: 'error', turnId, message: `the agent runtime failed: ${String(err)}`.slice(0, 4000) });
        send({ type: 'turn_done', turnId });
      })
      .finally(() => {
        // Reap only if no newer job has started meanwhile (it would be killed with the strays), and
        // only after a tool ran (nothing else starts processes). The shell waiting for the next call
        // goes too (the agent's commands could have taken it over); a fresh one follows.
        const current = this.active === undefined || this.active.controller === controller;
        if (this.options.reapStrays && current && this.toolsRan) {
          this.toolsRan = false;
          this.shells?.discard();
          const reaped = reapTurn(this.options.privilege);
          if (reaped.left > 0)
            this.protocolError(`${reaped.left} processes of the turn outran the reaper and still run`);
          this.shells?.prepare(this.options.shell ?? findShell(), this.options.workspace);
        }
        // The tools that opened tunnel streams are gone, and so is the worker's lease they rode on.
        if (current) this.egress?.closeAll();
        if (doneLine && !controller.signal.aborted) this.emit(doneLine);
        if (this.active?.controller === controller) this.active = undefined;
      });
    this.active = { turnId, controller, done };
  }

  private cancelActive(): void {
    const active = this.active;
    if (!active) return;
    this.active = undefined;
    active.controller.abort();
    this.emit({ type: 'turn_done', turnId: active.turnId });
  }

  private askModel(
    turnId: string,
    requestId: string,
    messages: ChatMessage[],
    signal: AbortSignal,
  ): Promise<ModelAnswer> {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve({ kind: 'aborted' });
      const onAbort = () => {
        this.waiting.delete(requestId);
        resolve({ kind: 'aborted' });
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiting.set(requestId, {
        turnId,
        settle: (answer) => {
          signal.removeEventListener('abort', onAbort);
          resolve(answer);
        },
      });
      this.emit({ type: 'model_request', turnId, requestId, messages });
    });
  }

  private answer(message: z.infer<typeof ModelResponse> | z.infer<typeof ModelError>): void {
    const waiter = this.waiting.get(message.requestId);
    if (!waiter || waiter.turnId !== message.turnId) {
      this.protocolError(
        `${message.type} for request ${message.requestId} of turn ${message.turnId} ignored: no such request is waiting`,
      );
      return;
    }
    this.waiting.delete(message.requestId);
    waiter.settle(
      message.type === 'model_response'
        ? { kind: 'response', message: message.message }
        : { kind: 'error', message: message.message },
    );
  }

  /** An error about the protocol itself, not about a turn (so it carries no turnId). */
  private protocolError(text: string): void {
    this.emit({ type: 'error', message: text.slice(0, 4000) });
  }

  /** Every line is checked against the protocol before it leaves, so a bug cannot emit garbage. */
  private emit(message: RuntimeToWorker): void {
    const checked = RuntimeToWorker.safeParse(message);
    if (checked.success) {
      this.options.write(checked.data, this.frameKey);
      return;
    }
    const issue = checked.error.issues[0];
    const what = issue ? `${issue.path.join('.')}: ${issue.message}` : 'invalid';
    this.options.write(
      { type: 'error', message: `runtime bug: a ${message.type} line was invalid (${what})` },
      this.frameKey,
    );
  }
}
