import type { Redis } from 'ioredis';
import type { InboundMessage } from '../../contracts/protocol/inbound.js';
import { isSubAgent, taskScopeOf, taskTitle } from '../../contracts/tasks/task.js';
import type { AuditRecorder } from '../audit/audit-log.js';
import { TaskStore } from '../stores/task-store.js';

/**
 * Where messages become tasks: the inbound queue calls `before` ahead of recording a message (so a
 * worker never sees a task's first turn without its task) and `accepted` once it is queued.
 */
export class TaskIntake {
  readonly store: TaskStore;

  constructor(
    redis: Redis,
    instance: string,
    private readonly audit?: AuditRecorder,
  ) {
    this.store = new TaskStore(redis, instance);
  }

  /** A first message in a group channel's thread makes the thread a task, owned by who wrote it. */
  async before(message: InboundMessage): Promise<void> {
    if (message.command) return;
    const scope = taskScopeOf(message.conversation);
    if (!scope) return;
    const owner = {
      platform: message.platform,
      id: message.user.id,
      ...(message.user.name ? { name: message.user.name } : {}),
    };
    const title = taskTitle(message.text || message.files.map((f) => f.name).join(', '));
    const created = await this.store.create({
      conversation: message.conversation,
      scope,
      owner,
      title,
      createdAt: new Date().toISOString(),
      root: message.conversation,
      depth: 0,
    });
    if (!created) return;
    await this.audit?.record({
      conversation: message.conversation,
      actor: `user:${message.platform}:${message.user.id}`,
      kind: 'task.created',
      data: { scope, title, owner: `${message.platform}:${message.user.id}`, depth: 0 },
    });
  }

  /** A queued message reopens a finished task, or queues a waiting one (`done` is not new work). */
  async accepted(message: InboundMessage): Promise<void> {
    if (message.command === 'done') return;
    const subAgent = isSubAgent(message.conversation);
    // DMs and web chats are never tasks: no Redis round trip for them.
    if (!subAgent && !taskScopeOf(message.conversation)) return;
    await this.store.apply(message.conversation, 'submitted', !subAgent);
  }
}
