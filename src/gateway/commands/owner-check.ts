import type { ConversationId } from '../../contracts/conversation/id.js';
import { taskScopeOf } from '../../contracts/tasks/task.js';
import type { Person } from '../../shared/stores/conversation-owner.js';
import type { AdapterDeps } from '../chat-adapter.js';

/**
 * Who may act on a conversation with a chat command (`status`, `stop`, `reset`, `done`, …): the person
 * who started it, or an admin. Pure, shared by Slack and Discord; the adapters find the owner and answer.
 */
export function mayAct(sender: Person, owner: Person | undefined, isAdmin: boolean): boolean {
  // An unknown owner is nobody's to act on but an admin's: fail closed.
  return isAdmin || (owner !== undefined && owner === sender);
}

/**
 * The conversation's owner: the one its first message recorded, else (threads from before that record)
 * its task's owner. Undefined when neither is known.
 */
export async function conversationOwner(
  deps: Pick<AdapterDeps, 'control' | 'tasks'>,
  conversation: ConversationId,
): Promise<Person | undefined> {
  const recorded = await deps.control.owner(conversation);
  if (recorded) return recorded;
  const task = await deps.tasks.get(conversation);
  return task && task.depth === 0 ? `${task.owner.platform}:${task.owner.id}` : undefined;
}

/**
 * The refusal. In a channel's thread, where everyone sees who started it, it names the owner; of a DM
 * (or an unknown owner) it says nothing, not even whether the conversation exists.
 */
export function ownerRefusalText(
  conversation: ConversationId,
  owner: Person | undefined,
  command: { verb: string; shown: string },
): string {
  const action = command.verb === 'done' ? 'close this task' : `use ${command.shown} on it`;
  const id = owner?.slice(owner.indexOf(':') + 1);
  if (id && taskScopeOf(conversation)) return `Only <@${id}> (who started it) or an admin can ${action}.`;
  return `Only the person who started that conversation, or an admin, can ${action}.`;
}
