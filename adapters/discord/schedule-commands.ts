import {
  type ChatFormat,
  createFromChat,
  type ScheduleCaller,
  schedulesCommand,
} from '../../src/gateway/commands/schedule-commands.js';
import { isAdmin } from './access.js';
import { channelRoute, discordConversationId } from './conversation.js';
import type { HandlerContext } from './handler-context.js';
import type { SlashCommand } from './payloads.js';
import type { CommandPlan } from './plans.js';

/** Times as Discord timestamps (each reader's own time zone), ids as code. */
export const DISCORD_FORMAT: ChatFormat = {
  time: (iso) => `<t:${Math.floor(Date.parse(iso) / 1000)}:f>`,
  code: (text) => `\`${text}\``,
  manage: '`/schedules`',
};

function caller(context: HandlerContext, command: SlashCommand): ScheduleCaller {
  return {
    owner: { platform: 'discord', id: command.user.id, name: command.user.name.slice(0, 128) },
    person: `discord:${command.user.id}`,
    admin: isAdmin(context.policy, command.roles),
    actor: `user:discord:${command.user.id}`,
  };
}

/** `/schedule when: task:` in a thread or DM: each run is a message from the caller there. */
export function scheduleFromDiscord(
  context: HandlerContext,
  command: SlashCommand,
  plan: Extract<CommandPlan, { kind: 'schedule' }>,
): Promise<string> {
  return createFromChat(
    context.deps.schedules,
    {
      text: plan.when,
      task: plan.task,
      conversation: plan.conversation,
      // Runs answer in the thread itself: an interaction's token is long expired by then.
      route: channelRoute(plan.channelId, plan.guildId),
      caller: caller(context, command),
    },
    DISCORD_FORMAT,
  );
}

/** `/schedule … new_thread: True`: the channel's schedule; each run starts a thread there. */
export function scheduleThreadsFromDiscord(
  context: HandlerContext,
  command: SlashCommand,
  plan: Extract<CommandPlan, { kind: 'schedule-threads' }>,
): Promise<string> {
  return createFromChat(
    context.deps.schedules,
    {
      text: plan.when,
      task: plan.task,
      conversation: discordConversationId(plan.guildId, plan.channelId),
      route: channelRoute(plan.channelId, plan.guildId),
      caller: caller(context, command),
      newThread: true,
    },
    DISCORD_FORMAT,
  );
}

/** `/schedules [action: pause|resume|delete id: …]`: this channel's schedules. */
export function schedulesFromDiscord(
  context: HandlerContext,
  command: SlashCommand,
  plan: Extract<CommandPlan, { kind: 'schedules' }>,
): Promise<string> {
  return schedulesCommand(
    context.deps.schedules,
    { words: plan.words, channel: plan.channel, caller: caller(context, command) },
    DISCORD_FORMAT,
  );
}
