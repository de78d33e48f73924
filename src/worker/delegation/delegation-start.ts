import type { AuditActor } from '../../contracts/audit/events.js';
import { type ConversationId, platformOf, shortHash } from '../../contracts/conversation/id.js';
import { type FileRef, InboundMessage } from '../../contracts/protocol/inbound.js';
import { subAgentLabel, type Task, taskScopeOf, taskTitle } from '../../contracts/tasks/task.js';
import type { AuditRecorder } from '../../shared/audit/audit-log.js';
import type { NetworkPolicyStore } from '../../shared/stores/policy-store.js';
import type { TaskStore } from '../../shared/stores/task-store.js';
import type { HostCall } from '../turn/host-tool-relay.js';
import { subAgentRoute } from './delegation-outbound.js';
import { subAgentBrief } from './delegation-policy.js';

/** A sub-agent about to start: admitted, numbered, its files stored. */
export interface SubAgentPlan {
  child: ConversationId;
  task: Task | undefined;
  root: ConversationId;
  depth: number;
  deadline: number;
  grants: string[];
  args: { task: string };
  files: FileRef[];
}

/** Makes the sub-agent's task, sets its network, records the delegation and queues its task. */
export async function startSubAgent(
  deps: {
    tasks: Pick<TaskStore, 'create' | 'addToTree'>;
    network: Pick<NetworkPolicyStore, 'off' | 'allow'>;
    audit?: AuditRecorder;
    actor(): AuditActor;
    submit(message: InboundMessage): Promise<unknown>;
  },
  call: HostCall,
  plan: SubAgentPlan,
): Promise<void> {
  const parent = call.turn.conversation;
  const asker = call.turn.messages.at(-1);
  const owner = plan.task?.owner ?? {
    platform: asker?.platform ?? platformOf(parent),
    id: asker?.user.id ?? 'unknown',
    ...(asker?.user.name ? { name: asker.user.name } : {}),
  };
  await deps.tasks.create({
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
  await deps.tasks.addToTree(plan.root, plan.child);
  // Exactly these grants, whatever config rules would give the sub-agent's id: never wider than the parent.
  const by = deps.actor();
  await deps.network.off(plan.child, by);
  if (plan.grants.length) await deps.network.allow(plan.child, plan.grants, by);
  const requestedBy = `${owner.platform}:${owner.id}`;
  const detail = { parent, child: plan.child, root: plan.root, requestedBy, depth: plan.depth };
  for (const conversation of [parent, plan.child]) {
    await deps.audit?.record({
      conversation,
      turnId: call.turn.turnId,
      actor: by,
      kind: 'delegation.started',
      data: { ...detail, files: plan.files.map((f) => f.name), network: plan.grants },
    });
  }
  await deps.submit(
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
