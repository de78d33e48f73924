import type { Redis } from 'ioredis';
import type { SandboxDriver } from '../../../sandbox/host/driver/types.js';
import type { AuditActor } from '../../contracts/audit/events.js';
import { type ConversationId, platformOf, shortHash } from '../../contracts/conversation/id.js';
import type { Logger } from '../../contracts/log/logger.js';
import { HostToolArgs, hostToolDefinition } from '../../contracts/protocol/host-tools.js';
import { type FileRef, InboundMessage } from '../../contracts/protocol/inbound.js';
import {
  childConversationId,
  isSubAgent,
  subAgentLabel,
  type Task,
  taskScopeOf,
  taskTitle,
} from '../../contracts/tasks/task.js';
import type { AuditRecorder } from '../../shared/audit/audit-log.js';
import type { Turn } from '../../shared/queue/conversation-store.js';
import type { BlobStore } from '../../shared/stores/blob-store.js';
import type { NetworkPolicyStore } from '../../shared/stores/policy-store.js';
import type { TaskStore } from '../../shared/stores/task-store.js';
import { carriesCanary } from '../turn/canary.js';
import type { HostCall, HostTools } from '../turn/host-tool-relay.js';
import { subAgentRoute } from './delegation-outbound.js';
import {
  type DelegationLimits,
  narrowGrants,
  refusal,
  subAgentBrief,
  workspacePath,
} from './delegation-policy.js';
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
}

type Result = { ok: boolean; output: string };

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
    const paths: string[] = [];
    for (const raw of args.files) {
      const checked = workspacePath(raw);
      if ('error' in checked) return this.refuse(call, checked.error);
      paths.push(checked.path);
    }
    const names = paths.map((p) => p.split('/').at(-1) ?? p);
    if (new Set(names).size < names.length) return this.refuse(call, 'two of the files have the same name');
    const network = narrowGrants(await this.deps.grantsOf(parent), args.network);
    if ('error' in network) return this.refuse(call, network.error);

    const root = task?.root ?? parent;
    const children = await this.deps.tasks.bump(parent, 'children');
    const treeSandboxes = await this.deps.tasks.bump(root, 'subagents');
    const unreserve = async () => {
      await this.deps.tasks.bump(parent, 'children', -1);
      await this.deps.tasks.bump(root, 'subagents', -1);
    };
    const state = {
      depth: await this.depthOf(parent, task),
      children: children - 1,
      treeSandboxes: treeSandboxes - 1,
      waitingParents: this.waiting.size,
      parentWaiting: this.waiting.has(parent),
    };
    const why = refusal(state, this.deps.limits);
    if (why) {
      await unreserve();
      return this.refuse(call, why);
    }
    const read = await this.deps.driver.readWorkspaceFiles(parent, paths, this.deps.limits.fileMaxBytes);
    if (read.refused.length > 0) {
      await unreserve();
      return this.refuse(call, `these files cannot be handed over: ${read.refused.join(', ')}`);
    }
    const canary = (await this.deps.canaryFor?.(parent)) ?? '';
    if (canary && read.files.some((file) => carriesCanary(file.bytes.toString('utf8'), canary))) {
      await unreserve();
      this.deps.tripwire?.(parent, 'the agent tried to hand the canary credentials to a sub-agent');
      return this.refuse(call, 'one of the files holds credentials that may not leave this sandbox');
    }
    // Numbered only once it will start, from a sequence never given back: a sub-agent's id is never reused.
    const child = childConversationId(parent, await this.deps.tasks.bump(parent, 'sequence'));
    if (!child) {
      await unreserve();
      return this.refuse(call, 'this conversation’s id leaves no room for sub-agents');
    }
    const files: FileRef[] = [];
    for (const file of read.files) {
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
    const label = subAgentLabel(child) ?? child;
    await this.start(call, {
      child,
      task,
      root,
      depth: state.depth + 1,
      deadline,
      grants: network.grants,
      args,
      files,
    });

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

  /** Makes the sub-agent's task, sets its network, records the delegation and queues its task. */
  private async start(
    call: HostCall,
    plan: {
      child: ConversationId;
      task: Task | undefined;
      root: ConversationId;
      depth: number;
      deadline: number;
      grants: string[];
      args: { task: string };
      files: FileRef[];
    },
  ): Promise<void> {
    const parent = call.turn.conversation;
    const asker = call.turn.messages.at(-1);
    const owner = plan.task?.owner ?? {
      platform: asker?.platform ?? platformOf(parent),
      id: asker?.user.id ?? 'unknown',
      ...(asker?.user.name ? { name: asker.user.name } : {}),
    };
    await this.deps.tasks.create({
      conversation: plan.child,
      scope: plan.task?.scope ?? taskScopeOf(plan.root) ?? plan.root,
      owner,
      title: taskTitle(plan.args.task),
      createdAt: new Date().toISOString(),
      parent,
      root: plan.root,
      depth: plan.depth,
      deadline: plan.deadline,
    });
    await this.deps.tasks.addToTree(plan.root, plan.child);
    // Exactly these grants, whatever config rules would give the sub-agent's id: never wider than the parent.
    const by = this.deps.actor();
    await this.deps.network.off(plan.child, by);
    if (plan.grants.length) await this.deps.network.allow(plan.child, plan.grants, by);
    const requestedBy = `${owner.platform}:${owner.id}`;
    const detail = { parent, child: plan.child, root: plan.root, requestedBy, depth: plan.depth };
    for (const conversation of [parent, plan.child]) {
      await this.deps.audit?.record({
        conversation,
        turnId: call.turn.turnId,
        actor: by,
        kind: 'delegation.started',
        data: { ...detail, files: plan.files.map((f) => f.name), network: plan.grants },
      });
    }
    await this.deps.submit(
      InboundMessage.parse({
        id: `delegate:${shortHash(plan.child)}`,
        conversation: plan.child,
        platform: platformOf(plan.child),
        user: { id: owner.id, name: 'parent agent' },
        text: subAgentBrief(
          subAgentLabel(plan.child) ?? plan.child,
          plan.args.task,
          plan.files.map((f) => f.name),
        ),
        receivedAt: new Date().toISOString(),
        route: subAgentRoute(asker?.route ?? {}),
        files: plan.files,
      }),
    );
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
