import { ConversationId } from '../../src/contracts/conversation/id.js';
import type { AdapterDeps } from '../../src/gateway/chat-adapter.js';
import {
  type ChatFormat,
  createFromChat,
  type ScheduleCaller,
  schedulesCommand,
} from '../../src/gateway/commands/schedule-commands.js';
import type { SlashCommandBody } from './commands.js';
import type { SlackRoute } from './slack-event.js';
import { slackConversationId } from './slack-event.js';

/** Times in Slack's date markup (each reader sees their own time zone), ids as code. */
export const SLACK_FORMAT: ChatFormat = {
  time: (iso) => `<!date^${Math.floor(Date.parse(iso) / 1000)}^{date_short_pretty} at {time}|${iso}>`,
  code: (text) => `\`${text}\``,
  manage: '`/sandbot schedules`',
};

export function slackCaller(cmd: SlashCommandBody, admin: boolean): ScheduleCaller {
  return {
    owner: {
      platform: 'slack',
      id: cmd.user_id,
      ...(cmd.user_name ? { name: cmd.user_name.slice(0, 128) } : {}),
    },
    person: `slack:${cmd.user_id}`,
    admin,
    actor: `user:slack:${cmd.user_id}`,
  };
}

/**
 * `/sandbot schedule <when> <task>` (into the caller's conversation here, as other verbs act on) and
 * `/sandbot schedules [pause|resume|delete <id>]` (this channel's; a DM's own).
 */
export class SlackScheduleCommands {
  constructor(private readonly deps: AdapterDeps) {}

  schedule(
    cmd: SlashCommandBody,
    text: string,
    target: { conversation: ReturnType<typeof slackConversationId>; route: SlackRoute },
    admin: boolean,
  ): Promise<string> {
    return createFromChat(
      this.deps.schedules,
      { text, conversation: target.conversation, route: target.route, caller: slackCaller(cmd, admin) },
      SLACK_FORMAT,
    );
  }

  /** `--new-thread`: the schedule belongs to the channel, and each run starts a thread there. */
  async scheduleThreads(cmd: SlashCommandBody, text: string, dm: boolean, admin: boolean): Promise<string> {
    if (dm)
      return 'A run in a thread of its own needs a channel: use `--new-thread` in one, or schedule here without it.';
    return createFromChat(
      this.deps.schedules,
      {
        text,
        conversation: ConversationId.parse(`slack:${cmd.team_id}:${cmd.channel_id}`),
        route: { team: cmd.team_id, channel: cmd.channel_id },
        caller: slackCaller(cmd, admin),
        newThread: true,
      },
      SLACK_FORMAT,
    );
  }

  schedules(cmd: SlashCommandBody, words: string[], dm: boolean, admin: boolean): Promise<string> {
    const channel = dm
      ? slackConversationId(cmd.team_id, cmd.channel_id, 'dm')
      : `slack:${cmd.team_id}:${cmd.channel_id}`;
    return schedulesCommand(
      this.deps.schedules,
      { words, channel, caller: slackCaller(cmd, admin) },
      SLACK_FORMAT,
    );
  }
}
