import type { Redis } from 'ioredis';
import type { SandboxDriver } from '../../../sandbox/host/driver/types.js';
import type { WorkspaceFilesResult } from '../../../sandbox/host/driver/workspace-read.js';
import type { AuditActor } from '../../contracts/audit/events.js';
import type { ConversationId } from '../../contracts/conversation/id.js';
import type { Logger } from '../../contracts/log/logger.js';
import { HostToolArgs, hostToolDefinition } from '../../contracts/protocol/host-tools.js';
import type { FileRef, InboundMessage } from '../../contracts/protocol/inbound.js';
import { childConversationId, isSubAgent, subAgentLabel, type Task } from '../../contracts/tasks/task.js';
import type { AuditRecorder } from '../../shared/audit/audit-log.js';
import type { Turn } from '../../shared/queue/conversation-store.js';
import type { BlobStore } from '../../shared/stores/blob-store.js';
import type { NetworkPolicyStore } from '../../shared/stores/policy-store.js';
import type { TaskStore } from '../../shared/stores/task-store.js';
import { carriesCanary } from '../turn/canary.js';
import type { HostCall, HostTools } from '../turn/host-tool-relay.js';
import { type DelegationLimits, handedOverPaths, narrowGrants, refusal } from './delegation-policy.js';
import { startSubAgent } from './delegation-start.js';
import { awaitResult, returnFiles } from './delegation-wait.js';

export interface DelegationDeps {
  driver: SandboxDriver;
  blobs: BlobStore;
  tasks: TaskStore;
  /** Where a sub-agent's grants are set (an override: config rules never widen it). */
  network: Pick<NetworkPolicyStore, 'off' | 'allow'>;
  /** A conversation's effective grants (what its sandbox may reach now). */
  grantsOf(conversation: ConversationId): Promise<string[]>;
  redis: Redis;
  /** Queues the sub-agent's task as its conversation's first message. */
  submit(message: InboundMessage): Promise<unknown>;
  /** Asks whichever worker runs a conversation to stop its turn. */
  stop(conversation: ConversationId, by: string): Promise<void>;
  audit?: AuditRecorder;
  /** The conversation's canary token: a handed-over file carrying it is a tripwire, as reading it is. */
  canaryFor?(conversation: ConversationId): Promise<string>;
  tripwire?(conversation: ConversationId, reason: string): void;
  logger: Logger;
  instance: string;
  actor(): AuditActor;
  limits: DelegationLimits & { maxSeconds: number; fileMaxBytes: number };
  /** Sub-agents beyond the fan-out and sandbox limits that approvals gave the conversation (request_access). */
  extraSubAgents?(conversation: ConversationId): Promise<number>;
}

type Result = { ok: boolean; output: string };

/** A sub-agent counted against the limits, numbered, with the files it is handed (read, not yet stored). */
interface Reservation {
  child: ConversationId;
  root: ConversationId;
  /** Its depth (its parent's plus one). */
  depth: number;
  files: WorkspaceFilesResult['files'];
}

/**
 * The `delegate` host tool. The worker, never the sandbox, makes the sub-agent: a conversation of its
 * own (so its own sandbox and history), the files named copied out of the parent's workspace into its
 * inbox, a network no wider than the parent's, and limits on depth, fan-out, sandboxes per task, time
 * and worker slots. It waits for the sub-agent's answer and hands it (and its outbox files) back.
 */
export class Delegation implements HostTools {
  /** Parents on this worker waiting for sub-agents, with how many each waits for. */
  private readonly waiting = new Map<ConversationId, number>();

  constructor(private readonly deps: DelegationDeps) {}

  async offered(turn: Turn) {
    const depth = await this.depthOf(turn.conversation);
    return depth < this.deps.limits.maxDepth ? [hostToolDefinition('delegate')] : [];
  }

  private async depthOf(conversation: ConversationId, task?: Task): Promise<number> {
    const known = task ?? (await this.deps.tasks.get(conversation));
    // A sub-agent whose record is gone is treated as deep as allowed: it gets no further.
    return known?.depth ?? (isSubAgent(conversation) ? this.deps.limits.maxDepth : 0);
  }

  async run(call: HostCall): Promise<Result> {
    const parsed = HostToolArgs.delegate.safeParse(call.args);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      return fail(
        `invalid arguments for delegate: ${issue?.path.join('.') || 'arguments'}: ${issue?.message}`,
      );
    }
    const args = parsed.data;
    const parent = call.turn.conversation;
    const task = await this.deps.tasks.get(parent);
    const handed = handedOverPaths(args.files);
    if ('error' in handed) return this.refuse(call, handed.error);
    const network = narrowGrants(await this.deps.grantsOf(parent), args.network);
    if ('error' in network) return this.refuse(call, network.error);
    const reserved = await this.reserve(call, task, handed.paths);
    if ('output' in reserved) return reserved;
    const { child, root, depth } = reserved;
    const files: FileRef[] = [];
    for (const file of reserved.files) {
      files.push({
        name: file.name,
        size: file.bytes.length,
        blobKey: await this.deps.blobs.put(file.bytes),
      });
    }
    const deadline = Math.min(
      task?.deadline ?? Number.POSITIVE_INFINITY,
      Date.now() + this.deps.limits.maxSeconds * 1000,
    );
    await startSubAgent(this.deps, call, {
      child,
      task,
      root,
      depth,
      deadline,
      grants: network.grants,
      args,
      files,
    });
    return this.awaitChild(call, child, deadline);
  }

  /**
   * Counts the sub-agent against its parent's and its tree's limits, reads the files it is handed and
   * numbers it. Anything refused gives the counts back.
   */
  private async reserve(
    call: HostCall,
    task: Task | undefined,
    paths: string[],
  ): Promise<Result | Reservation> {
    const parent = call.turn.conversation;
    const root = task?.root ?? parent;
    const children = await this.deps.tasks.bump(parent, 'children');
    const treeSandboxes = await this.deps.tasks.bump(root, 'subagents');
    const admitted = await this.admit(parent, task, paths, {
      children: children - 1,
      treeSandboxes: treeSandboxes - 1,
    });
    if ('refused' in admitted) {
      await this.deps.tasks.bump(parent, 'children', -1);
      await this.deps.tasks.bump(root, 'subagents', -1);
      if (admitted.tripwire) this.deps.tripwire?.(parent, admitted.tripwire);
      return this.refuse(call, admitted.refused);
    }
    return { ...admitted, root };
  }

  private async admit(
    parent: ConversationId,
    task: Task | undefined,
    paths: string[],
    counts: { children: number; treeSandboxes: number },
  ): Promise<{ refused: string; tripwire?: string } | Omit<Reservation, 'root'>> {
    const state = {
      depth: await this.depthOf(parent, task),
      ...counts,
      waitingParents: this.waiting.size,
      parentWaiting: this.waiting.has(parent),
    };
    const extra = (await this.deps.extraSubAgents?.(parent)) ?? 0;
    const limits = {
      ...this.deps.limits,
      maxFanout: this.deps.limits.maxFanout + extra,
      maxSandboxes: this.deps.limits.maxSandboxes + extra,
    };
    const why = refusal(state, limits);
    if (why) return { refused: why };
    const read = await this.deps.driver.readWorkspaceFiles(parent, paths, this.deps.limits.fileMaxBytes);
    if (read.refused.length > 0) {
      return { refused: `these files cannot be handed over: ${read.refused.join(', ')}` };
    }
    const canary = (await this.deps.canaryFor?.(parent)) ?? '';
    if (canary && read.files.some((file) => carriesCanary(file.bytes.toString('utf8'), canary))) {
      return {
        refused: 'one of the files holds credentials that may not leave this sandbox',
        tripwire: 'the agent tried to hand the canary credentials to a sub-agent',
      };
    }
    // Numbered only once it will start, from a sequence never given back: a sub-agent's id is never reused.
    const child = childConversationId(parent, await this.deps.tasks.bump(parent, 'sequence'));
    if (!child) return { refused: 'this conversation’s id leaves no room for sub-agents' };
    return { child, depth: state.depth + 1, files: read.files };
  }

  /** Waits for the sub-agent's answer (or its deadline, or the end of the parent's turn) and hands it back. */
  private async awaitChild(call: HostCall, child: ConversationId, deadline: number): Promise<Result> {
    const parent = call.turn.conversation;
    const label = subAgentLabel(child) ?? child;
    this.waiting.set(parent, (this.waiting.get(parent) ?? 0) + 1);
    try {
      const outcome = await awaitResult(this.deps.redis, this.deps.instance, child, deadline, call.signal);
      await this.finished(call, child, outcome.kind === 'result' ? outcome.result.kind : outcome.kind);
      if (outcome.kind !== 'result') {
        await this.deps.tasks.close(child, 'delegation');
        await this.deps.stop(child, `delegation:${outcome.kind}`);
        return fail(
          outcome.kind === 'timeout'
            ? `sub-agent ${label} did not finish in time (SANDBOT_DELEGATE_MAX_SECONDS) and was stopped`
            : `sub-agent ${label} was stopped: your turn ended`,
        );
      }
      const { result } = outcome;
      if (result.kind === 'error') return fail(`sub-agent ${label} failed: ${result.message}`);
      const returned = await returnFiles(this.deps, parent, label, result.files);
      const list = returned.length
        ? `\n\nFiles it returned, now in your workspace: ${returned.join(', ')}`
        : '';
      return { ok: true, output: `Sub-agent ${label} answered:\n${result.text}${list}` };
    } finally {
      const left = (this.waiting.get(parent) ?? 1) - 1;
      if (left > 0) this.waiting.set(parent, left);
      else this.waiting.delete(parent);
    }
  }

  private async finished(call: HostCall, child: ConversationId, outcome: string): Promise<void> {
    const parent = call.turn.conversation;
    for (const conversation of [parent, child]) {
      await this.deps.audit?.record({
        conversation,
        turnId: call.turn.turnId,
        actor: this.deps.actor(),
        kind: 'delegation.finished',
        data: { parent, child, outcome },
      });
    }
  }

  private async refuse(call: HostCall, reason: string): Promise<Result> {
    await this.deps.audit?.record({
      conversation: call.turn.conversation,
      turnId: call.turn.turnId,
      actor: this.deps.actor(),
      kind: 'delegation.refused',
      data: { reason },
    });
    return fail(`delegate refused: ${reason}`);
  }
}

function fail(output: string): Result {
  return { ok: false, output };
}
