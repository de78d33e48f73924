import type { WorkspaceSnapshot } from '../../../sandbox/host/driver/workspace-snapshot.js';
import type { AuditActor, AuditInput } from '../../contracts/audit/events.js';
import type { ConversationId } from '../../contracts/conversation/id.js';
import type { Logger } from '../../contracts/log/logger.js';
import type { ChatMessage } from '../../contracts/protocol/agent.js';
import type { OutboundEvent } from '../../contracts/protocol/outbound.js';
import { ToolName } from '../../contracts/protocol/tools.js';
import type { AuditRecorder } from '../../shared/audit/audit-log.js';
import { boundValue, capText } from '../../shared/audit/bound.js';
import { type SandbotMetrics, sandbotMetrics } from '../../shared/metrics.js';
import type { Turn } from '../../shared/queue/conversation-store.js';
import type { ContextFolded } from '../broker/context-window.js';
import { ARG_CHARS, type ModelCallTrail, modelCallTrail } from './model-call-trail.js';
import type { WorkspaceBaselines } from './workspace-baselines.js';
import { diffWorkspace, type FileChange } from './workspace-diff.js';

export type TrailMode = 'chat' | 'run';
export type TrailOutcome = 'replied' | 'failed' | 'stopped' | 'killed' | 'abandoned';
type ToolResult = { ok: boolean; output: string; truncated: boolean };

/** What the turn runner tells the audit log and the metrics about one turn. */
export type { ModelCallTrail };

export interface TurnTrail {
  started(): void;
  /**
   * How the previous turn left /workspace, when nothing can have changed it since (same container, no
   * turn in between: see WorkspaceBaselines); undefined otherwise. Call once the sandbox is open and
   * before anything goes into it: it also marks the workspace as this turn's.
   */
  priorWorkspace(containerId: string, fresh?: boolean): Promise<WorkspaceSnapshot | undefined>;
  /** What to diff against at the end: `prior` when nothing was put in since, else a new snapshot. */
  workspaceBefore(prior?: WorkspaceSnapshot): Promise<void>;
  modelRequest(requestId: string, model: string, messages: ChatMessage[]): ModelCallTrail;
  /** A sandbox's `tool_finished`: the result of a call the model made (matched by name, in order). */
  toolFinished(result: ToolResult & { name: string }): void;
  /** A chat `/run` command and its result (undefined: none came back). */
  commandFinished(command: string, result: ToolResult | undefined): void;
  limitHit(limit: string, detail?: Record<string, unknown>): void;
  /** The conversation's oldest messages were folded to fit the model's context window. */
  contextFolded?(event: ContextFolded): void;
  /** The turn's skill tools (name → "skill@version"): their calls are recorded with the skill they belong to. */
  skillTools?(tools: Record<string, string>): void;
  /** Wraps `publish` to learn the error the user is told, and to record each reply sent (`reply`). */
  publishing(publish: (event: OutboundEvent) => Promise<void>): (event: OutboundEvent) => Promise<void>;
  /**
   * Diffs /workspace against the snapshot from the start and records the changes. Called after the
   * last message went out: the user never waits on it (and the snapshot is bounded, so the next turn
   * waits little). With `keep` (a turn that ended cleanly) the snapshot is kept for the next turn.
   * Returns the changes, or undefined when they are not fully known (no snapshot, or one cut short).
   */
  workspaceAfter(options?: { keep?: boolean }): Promise<FileChange[] | undefined>;
  /** Records what is still open (and the file changes, if not yet done) and `turn.finished`. */
  finished(outcome: TrailOutcome): Promise<void>;
  /**
   * Nothing of the agent's ran in the sandbox this turn: the model called no tool, no command ran, and
   * the turn began on a kept snapshot (the previous turn ended cleanly, its processes reaped) or in a
   * container the open started. Then /workspace is as the worker left it before the turn: its outbox
   * holds nothing new, and the end's snapshot is the start's (no archive read through the engine).
   */
  ranNothing(): boolean;
}

export interface TrailDeps {
  audit: AuditRecorder;
  snapshot(conversation: ConversationId): Promise<WorkspaceSnapshot>;
  /** Snapshots kept from turn to turn; absent: every turn takes its own. */
  baselines?: WorkspaceBaselines;
  /** This worker as an actor: `worker:<id>`. */
  actor(): AuditActor;
  logger: Logger;
}

const RESULT_CHARS = 2000;
/** Longest reply text recorded (a chat message is rarely longer; the rest is counted, not kept). */
const REPLY_CHARS = 8000;
const MAX_FILE_EVENTS = 1000;

/** Does nothing: for a runner wired without an audit log. */
export const silentTrail: TurnTrail = {
  started: () => undefined,
  priorWorkspace: async () => undefined,
  workspaceBefore: async () => undefined,
  workspaceAfter: async () => undefined,
  modelRequest: () => ({ answered: () => undefined, failed: () => undefined }),
  toolFinished: () => undefined,
  commandFinished: () => undefined,
  limitHit: () => undefined,
  publishing: (publish) => publish,
  finished: async () => undefined,
  ranNothing: () => false,
};

export function turnTrails(deps: TrailDeps): (turn: Turn, mode: TrailMode) => TurnTrail {
  return (turn, mode) => new RecordedTurn(deps, turn, mode, sandbotMetrics());
}

class RecordedTurn implements TurnTrail {
  private readonly startedAt = Date.now();
  private modelCalls = 0;
  private toolCalls = 0;
  /** Calls the model asked for whose results have not come back yet, in order. */
  private readonly open: { name: string; args: Record<string, unknown> }[] = [];
  private before?: WorkspaceSnapshot;
  /** This turn's mark on the workspace (see WorkspaceBaselines.claim) and the container it holds. */
  private claimed?: { claim: string; containerId?: string };
  private filesChanged = 0;
  /** Nothing of the agent's was running as the turn began: on a kept snapshot, or in a fresh container. */
  private quiet = false;
  private error?: string;
  private readonly user: AuditActor;
  private skills: Record<string, string> = {};

  constructor(
    private readonly deps: TrailDeps,
    private readonly turn: Turn,
    private readonly mode: TrailMode,
    private readonly metrics: SandbotMetrics,
  ) {
    const last = turn.messages.at(-1);
    this.user = last ? `user:${last.platform}:${last.user.id}` : 'agent';
  }

  private record(actor: AuditActor, kind: AuditInput['kind'], data: Record<string, unknown>): void {
    const input = { conversation: this.turn.conversation, turnId: this.turn.turnId, actor, kind, data };
    void this.deps.audit.record(input as AuditInput);
  }

  started(): void {
    const users = [...new Set(this.turn.messages.map((m) => `user:${m.platform}:${m.user.id}`))];
    this.record(this.deps.actor(), 'turn.started', {
      mode: this.mode,
      messages: this.turn.messages.length,
      users,
    });
    for (const message of this.turn.messages) {
      const waited = (this.startedAt - Date.parse(message.receivedAt)) / 1000;
      if (Number.isFinite(waited)) this.metrics.queueWait.observe(Math.max(0, waited));
    }
  }

  /** `fresh`: the open started the container (nothing of the agent's runs in it, as after a kept snapshot). */
  async priorWorkspace(containerId: string, fresh = false): Promise<WorkspaceSnapshot | undefined> {
    const baselines = this.deps.baselines;
    if (!baselines || this.claimed) return undefined;
    // Not caught: a turn that cannot mark the workspace as its own must not run (another worker's
    // kept snapshot would stay valid past the changes this turn makes).
    const { claim, snapshot } = await baselines.claim(this.turn.conversation, containerId || undefined);
    this.claimed = { claim, containerId: containerId || undefined };
    this.quiet = snapshot !== undefined || fresh;
    return snapshot;
  }

  async workspaceBefore(prior?: WorkspaceSnapshot): Promise<void> {
    if (!this.claimed && this.deps.baselines) {
      const { claim } = await this.deps.baselines.claim(this.turn.conversation, undefined);
      this.claimed = { claim };
    }
    this.before = prior ?? (await this.snapshot());
  }

  modelRequest(requestId: string, model: string, messages: ChatMessage[]): ModelCallTrail {
    this.modelCalls += 1;
    return modelCallTrail(
      {
        actor: this.deps.actor(),
        content: this.deps.audit.content,
        metrics: this.metrics,
        record: (actor, kind, data) => this.record(actor, kind, data),
        opened: (call) => this.open.push(call),
      },
      { requestId, model, messages },
    );
  }

  toolFinished(result: ToolResult & { name: string }): void {
    const index = this.open.findIndex((call) => call.name === result.name);
    if (index === -1) {
      // Not a call the model made: the sandbox's word alone, which the audit does not take.
      this.deps.logger.warn({ tool: result.name }, 'sandbox reported a tool call the model did not make');
      return;
    }
    const [call] = this.open.splice(index, 1);
    if (call) this.recordTool('agent', call.name, call.args, result);
  }

  commandFinished(command: string, result: ToolResult | undefined): void {
    this.recordTool(this.user, 'bash', { command }, result);
  }

  skillTools(tools: Record<string, string>): void {
    this.skills = tools;
  }

  private recordTool(actor: AuditActor, name: string, args: Record<string, unknown>, result?: ToolResult) {
    this.toolCalls += 1;
    const skill = Object.hasOwn(this.skills, name) ? this.skills[name] : undefined;
    // The model may name tools that do not exist: those share one label, so it cannot grow without bound.
    const tool = ToolName.safeParse(name).success ? name : skill ? 'skill' : 'other';
    this.metrics.toolCalls.inc({ tool, ok: result ? String(result.ok) : 'unknown' });
    this.record(actor, 'tool.call', {
      name,
      ...(skill ? { skill } : {}),
      args: boundValue(args, ARG_CHARS),
      reported: result !== undefined,
      ...(result
        ? { ok: result.ok, result: capText(result.output, RESULT_CHARS), truncated: result.truncated }
        : {}),
    });
  }

  limitHit(limit: string, detail: Record<string, unknown> = {}): void {
    this.record(this.deps.actor(), 'limit.hit', { limit, ...detail });
  }

  contextFolded(event: ContextFolded): void {
    this.record(this.deps.actor(), 'model.context_folded', { ...event });
  }

  publishing(publish: (event: OutboundEvent) => Promise<void>) {
    return async (event: OutboundEvent) => {
      if (event.type === 'error') this.error = event.message;
      await publish(event);
      // After it was handed on: a reply that could not be sent was never read.
      if (event.type === 'reply') {
        this.record(this.mode === 'chat' ? 'agent' : this.deps.actor(), 'reply', {
          messageId: event.id,
          chars: event.text.length,
          text: capText(event.text, REPLY_CHARS),
          files: (event.files ?? []).map((f) => ({ name: f.name, size: f.size })),
        });
      }
    };
  }

  async workspaceAfter(options: { keep?: boolean } = {}): Promise<FileChange[] | undefined> {
    const before = this.before;
    this.before = undefined; // once
    if (!before) return undefined;
    for (const call of this.open.splice(0)) this.recordTool('agent', call.name, call.args);
    const after = this.ranNothing() ? before : await this.snapshot();
    const changes = after ? diffWorkspace(before, after) : [];
    const { claim, containerId } = this.claimed ?? {};
    if (options.keep && after && claim && containerId) {
      await this.deps.baselines
        ?.keep(this.turn.conversation, claim, containerId, after)
        .catch((error: unknown) => this.deps.logger.warn({ err: error }, 'workspace snapshot not kept'));
    }
    this.filesChanged = changes.length;
    const actor = this.mode === 'run' ? this.user : 'agent';
    for (const change of changes.slice(0, MAX_FILE_EVENTS)) this.record(actor, change.kind, change.data);
    if (changes.length > MAX_FILE_EVENTS) {
      this.limitHit('audit_file_events', {
        max: MAX_FILE_EVENTS,
        unrecorded: changes.length - MAX_FILE_EVENTS,
      });
    }
    return after && !after.truncated && !before.truncated ? changes : undefined;
  }

  async finished(outcome: TrailOutcome): Promise<void> {
    if (outcome !== 'abandoned') await this.workspaceAfter();
    for (const call of this.open.splice(0)) this.recordTool('agent', call.name, call.args);
    const filesChanged = this.filesChanged;
    const durationMs = Date.now() - this.startedAt;
    this.metrics.turnDuration.observe({ mode: this.mode, outcome }, durationMs / 1000);
    this.record(this.deps.actor(), 'turn.finished', {
      outcome,
      durationMs,
      modelCalls: this.modelCalls,
      toolCalls: this.toolCalls,
      filesChanged,
      ...(this.error ? { error: capText(this.error, 2000) } : {}),
    });
  }

  ranNothing(): boolean {
    // A call the model made is open until its result is recorded; recorded ones (and commands) are counted.
    return this.quiet && this.open.length === 0 && this.toolCalls === 0;
  }

  private async snapshot(): Promise<WorkspaceSnapshot | undefined> {
    try {
      const snapshot = await this.deps.snapshot(this.turn.conversation);
      // Cut at its byte or time budget (e.g. sparse files): what it did not see is unknown, and said so.
      if (snapshot.cut) this.limitHit('workspace_read', { read: 'snapshot', ...snapshot.cut });
      return snapshot;
    } catch (error) {
      this.deps.logger.warn(
        { err: error, conversation: this.turn.conversation },
        'workspace snapshot failed',
      );
      return undefined;
    }
  }
}
