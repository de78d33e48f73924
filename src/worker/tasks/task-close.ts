import type { SandboxDriver } from '../../../sandbox/host/driver/types.js';
import type { AuditActor } from '../../contracts/audit/events.js';
import { ConversationId, coversConversation } from '../../contracts/conversation/id.js';
import type { OutboundEvent } from '../../contracts/protocol/outbound.js';
import type { AuditRecorder } from '../../shared/audit/audit-log.js';
import type { Turn } from '../../shared/queue/conversation-store.js';
import type { TaskStore } from '../../shared/stores/task-store.js';
import type { OutboxLedger } from '../turn/outbox-ledger.js';
import { replyEvent } from '../turn/turn-events.js';

export interface TaskCloseDeps {
  driver: SandboxDriver;
  ledger: OutboxLedger;
  tasks: TaskStore;
  publish(event: OutboundEvent): Promise<void>;
  audit?: AuditRecorder;
  /** Conversation-id prefixes whose tasks are wiped when they end (SANDBOT_EPHEMERAL). */
  ephemeral: readonly string[];
}

/** What the thread reads when its task is closed. */
export function closedNotice(by: string, wiped: boolean): string {
  return wiped
    ? `✅ Task closed by ${by}. Its workspace and history are wiped (tasks in this channel are ephemeral).`
    : `✅ Task closed by ${by}. Its files are kept; write here again to reopen it.`;
}

/**
 * Runs a `done` in order with the task's messages: the task is closed (the gateway marked it already,
 * this makes sure), and when the channel's tasks are ephemeral its sandbox and every sub-agent's are
 * removed with their volumes. The thread is told either way.
 */
export async function closeTask(deps: TaskCloseDeps, turn: Turn, actor: AuditActor): Promise<void> {
  const message = turn.messages.at(-1);
  const who = message ? `${message.platform}:${message.user.id}` : 'unknown';
  const task = await deps.tasks.get(turn.conversation);
  if (task?.status !== 'done') await deps.tasks.close(turn.conversation, who);
  const tree = (await deps.tasks.tree(turn.conversation)).flatMap((c) => {
    const parsed = ConversationId.safeParse(c);
    return parsed.success ? [parsed.data] : [];
  });
  // Sub-agents still queued do not start once their task is closed.
  for (const conversation of tree) await deps.tasks.close(conversation, who);
  const wiped = deps.ephemeral.some((prefix) => coversConversation(prefix, turn.conversation));
  if (wiped) {
    for (const conversation of [turn.conversation, ...tree]) {
      await deps.driver.remove(conversation, { wipe: true });
      await deps.ledger.clear(conversation);
    }
  }
  await deps.audit?.record({
    conversation: turn.conversation,
    turnId: turn.turnId,
    actor,
    kind: 'task.closed',
    data: { by: who, wiped },
  });
  const name = message?.user.name ?? message?.user.id ?? 'someone';
  await deps.publish(replyEvent(turn, closedNotice(name, wiped), [], 'done'));
}
