import type { ConversationId } from '../../src/contracts/conversation/id.js';
import { type Board, boardOf } from '../../src/gateway/commands/task-board.js';
import { interactionRoute } from './conversation.js';
import { type HandlerContext, submitMessage } from './handler-context.js';
import type { SlashCommand } from './payloads.js';

/** The thread of a task `discord:<guild>:<channel>:<thread>`, as a channel mention (a link in Discord). */
export function discordThreadMention(conversation: string): string | undefined {
  const thread = conversation.split(':')[3];
  return thread && /^\d+$/.test(thread) ? `<#${thread}>` : undefined;
}

/** The board in Discord markdown: status, the thread, the title, the owner, the age (Discord's own clock). */
export function renderDiscordBoard(channelId: string, board: Board): string {
  if (board.rows.length === 0)
    return `No tasks in <#${channelId}> yet: use /ask or mention sandbot to start one.`;
  const lines = board.rows.map(({ task, icon, status }) => {
    const title = task.title.replace(/[*_`~|>]/g, (c) => `\\${c}`);
    const where = discordThreadMention(task.conversation) ?? '';
    const since = Math.floor(Date.parse(task.createdAt) / 1000);
    return `${icon} **${status}** · ${where} ${title} · <@${task.owner.id}> · <t:${since}:R>`;
  });
  const more = board.more > 0 ? `\n… and ${board.more} more` : '';
  return `**Tasks in <#${channelId}>**\n${lines.join('\n')}${more}`;
}

export async function taskBoardText(
  context: HandlerContext,
  scope: string,
  channelId: string,
): Promise<string> {
  const tasks = await context.deps.tasks.inScope(scope);
  return renderDiscordBoard(channelId, boardOf(tasks, Date.now()));
}

/**
 * `/done` in a task's thread: its owner or an admin (the command handler checked) closes it at once (the board shows it), a running
 * turn is stopped, and a `done` is queued for the worker, which wipes an ephemeral task and answers by
 * editing this command's response.
 */
export async function closeTaskFromDiscord(
  context: HandlerContext,
  command: SlashCommand,
  plan: { conversation: ConversationId; channelId: string; guildId?: string },
): Promise<string | undefined> {
  const { tasks } = context.deps;
  const task = await tasks.get(plan.conversation);
  if (!task || task.depth > 0) {
    return 'This thread is not a task: tasks are threads started with /ask or a mention in a channel.';
  }
  if (task.status === 'done') return 'This task is already done.';
  const by = `discord:${command.user.id}`;
  await tasks.close(plan.conversation, by);
  await context.deps.control.stop(plan.conversation, by);
  await submitMessage(context, {
    id: command.id,
    conversation: plan.conversation,
    user: command.user,
    text: '',
    route: interactionRoute(plan.channelId, plan.guildId, command, Date.now()),
    command: 'done',
  });
  return undefined;
}
