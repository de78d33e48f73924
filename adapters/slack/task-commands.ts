import type { ConversationId } from '../../src/contracts/conversation/id.js';
import type { AdapterDeps } from '../../src/gateway/chat-adapter.js';
import { type Board, boardOf } from '../../src/gateway/commands/task-board.js';
import { commandMessage, type SlashCommandBody } from './commands.js';
import type { SlackRoute } from './slack-event.js';
import { escapeForSlack } from './slack-text.js';

/** A thread's link, `https://slack.com/archives/<channel>/p<ts without the dot>` (Slack opens it in the team). */
export function slackThreadLink(conversation: string): string | undefined {
  const [, , channel, ts] = conversation.split(':');
  if (!channel || !ts || !/^\d+\.\d+$/.test(ts)) return undefined;
  return `https://slack.com/archives/${channel}/p${ts.replace('.', '')}`;
}

/** The board in Slack markup: status, the title linking to its thread, the owner, the age. */
export function renderSlackBoard(channel: string, board: Board): string {
  if (board.rows.length === 0) {
    return `No tasks in <#${channel}> yet: mention me with a request to start one.`;
  }
  const lines = board.rows.map(({ task, icon, status, age }) => {
    const title = escapeForSlack(task.title).replace(/\|/g, '¦');
    const link = slackThreadLink(task.conversation);
    const titled = link ? `<${link}|${title}>` : title;
    return `${icon} *${status}* · ${titled} · <@${task.owner.id}> · ${age}`;
  });
  const more = board.more > 0 ? `\n_… and ${board.more} more_` : '';
  return `*Tasks in <#${channel}>*\n${lines.join('\n')}${more}`;
}

/**
 * `/sandbot tasks` (the channel's board) and `/sandbot done` (close a task: its owner or an admin, as
 * the command handler checked).
 * Closing marks the task done at once, stops a running turn, and queues a `done` that the worker runs
 * in order: it wipes an ephemeral task's sandbox and tells the thread.
 */
export class SlackTaskCommands {
  constructor(private readonly deps: AdapterDeps) {}

  async board(cmd: SlashCommandBody, dm: boolean): Promise<string> {
    if (dm)
      return 'Tasks live in channels: use `/sandbot tasks` in one, where people mention me with requests.';
    const tasks = await this.deps.tasks.inScope(`slack:${cmd.team_id}:${cmd.channel_id}`);
    return renderSlackBoard(cmd.channel_id, boardOf(tasks, Date.now()));
  }

  async done(
    cmd: SlashCommandBody,
    target: { conversation: ConversationId; route: SlackRoute },
  ): Promise<string> {
    const task = await this.deps.tasks.get(target.conversation);
    if (!task || task.depth > 0) {
      return 'That thread is not a task: tasks are threads started by mentioning me in a channel.';
    }
    if (task.status === 'done') return 'That task is already done.';
    await this.deps.tasks.close(target.conversation, `slack:${cmd.user_id}`);
    await this.deps.control.stop(target.conversation, `slack:${cmd.user_id}`);
    await this.deps.submit(commandMessage(cmd, target, 'done'));
    return `Closed “${escapeForSlack(task.title)}”; its thread says so.`;
  }
}
