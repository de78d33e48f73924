import { ConversationId } from '../../src/contracts/conversation/id.js';
import type { Logger } from '../../src/contracts/log/logger.js';
import type { SlackKeys } from '../../src/contracts/redis/chat-keys.js';
import type { AdapterDeps } from '../../src/gateway/chat-adapter.js';
import { runNetworkCommand } from '../../src/gateway/commands/network-command.js';
import { conversationOwner, mayAct, ownerRefusalText } from '../../src/gateway/commands/owner-check.js';
import { parseSkillCommand } from '../../src/shared/stores/skill-control.js';
import { type AccessPolicy, decideAccess, isAdmin, refusalText } from './access.js';
import {
  commandMessage,
  HELP_TEXT,
  type ParsedCommand,
  parseCommandText,
  parseThreadRef,
  SlashCommandBody,
  statusText,
  type Verb,
} from './commands.js';
import { SlackScheduleCommands } from './schedule-commands.js';
import { isDirectMessage, type SlackRoute, slackConversationId } from './slack-event.js';
import { SlackTaskCommands } from './task-commands.js';

export interface CommandHandlerDeps {
  deps: AdapterDeps;
  keys: SlackKeys;
  policy: AccessPolicy;
  logger: Logger;
}

/** Answers the caller only (ephemeral, through the command's response_url). */
export type Respond = (text: string) => Promise<void>;

interface Target {
  conversation: ConversationId;
  route: SlackRoute;
}

/**
 * `/sandbot status|reset|stop|kill|network`. Bolt acks before this runs, so the 3-second limit holds
 * whatever Redis does. In a DM a command acts on the DM; in a channel, on the caller's latest thread
 * with the agent there, or on the thread whose link (or ts) follows the verb.
 */
export class SlackCommandHandler {
  private readonly tasks: SlackTaskCommands;
  private readonly schedules: SlackScheduleCommands;

  constructor(private readonly d: CommandHandlerDeps) {
    this.tasks = new SlackTaskCommands(d.deps);
    this.schedules = new SlackScheduleCommands(d.deps);
  }

  async handle(body: unknown, respond: Respond): Promise<void> {
    const parsed = SlashCommandBody.safeParse(body);
    if (!parsed.success) {
      this.d.logger.warn({ issue: parsed.error.issues[0]?.message }, 'slack slash command not understood');
      return;
    }
    const cmd = parsed.data;
    const command = parseCommandText(cmd.text);
    const refused = this.accessRefusal(cmd, command);
    if (refused) return respond(refused);
    if (command.kind === 'unknown') return respond(`I don't know \`${command.word}\`.\n${HELP_TEXT}`);
    const { verb } = command;
    if (verb === 'help') return respond(HELP_TEXT);
    const admin = verb === 'kill' || verb === 'network' || verb === 'release' || verb === 'skill';
    if (admin && !isAdmin(this.d.policy, cmd.user_id)) {
      this.audit(cmd, 'admin', verb);
      return respond(`\`/sandbot ${verb}\` is for sandbot admins only.`);
    }
    if (verb === 'tasks') {
      return respond(await this.tasks.board(cmd, isDirectMessage(cmd.channel_id, dmType(cmd))));
    }
    if (verb === 'schedules') {
      const dm = isDirectMessage(cmd.channel_id, dmType(cmd));
      const words = command.rest.split(/\s+/);
      return respond(await this.schedules.schedules(cmd, words, dm, isAdmin(this.d.policy, cmd.user_id)));
    }
    if (verb === 'schedule' && NEW_THREAD_FLAG.test(command.rest)) {
      const dm = isDirectMessage(cmd.channel_id, dmType(cmd));
      const text = command.rest.replace(NEW_THREAD_FLAG, '');
      return respond(
        await this.schedules.scheduleThreads(cmd, text, dm, isAdmin(this.d.policy, cmd.user_id)),
      );
    }
    const target = await this.target(cmd, command);
    if (!target) {
      return respond(
        'You have no conversation with me in this channel yet: mention me to start one, or name a thread: `/sandbot status <link to the thread>`.',
      );
    }
    const notOwner = await this.ownerRefusal(cmd, verb, target);
    if (notOwner) return respond(notOwner);
    return respond(await this.carryOut(cmd, { ...command, verb }, target));
  }

  /** A command acts on a conversation only for the person who started it, or an admin. */
  private async ownerRefusal(cmd: SlashCommandBody, verb: Verb, target: Target): Promise<string | undefined> {
    const sender = `slack:${cmd.user_id}` as const;
    // A DM has one person in it: typed there, the command is its owner's.
    const inOwnDm = target.route.channel === cmd.channel_id && isDirectMessage(cmd.channel_id, dmType(cmd));
    const owner = inOwnDm ? sender : await conversationOwner(this.d.deps, target.conversation);
    if (mayAct(sender, owner, isAdmin(this.d.policy, cmd.user_id))) return undefined;
    this.audit(cmd, 'owner', verb, target.conversation);
    return ownerRefusalText(target.conversation, owner, { verb, shown: `\`/sandbot ${verb}\`` });
  }

  /** Both the channel the command was typed in and the one it names must be open to the caller. */
  private accessRefusal(cmd: SlashCommandBody, command: ParsedCommand): string | undefined {
    const channel = command.kind === 'verb' ? (command.target?.channel ?? cmd.channel_id) : cmd.channel_id;
    for (const where of new Set([cmd.channel_id, channel])) {
      const access = decideAccess(this.d.policy, { teams: [cmd.team_id], channel: where, user: cmd.user_id });
      if (!access.allowed) {
        this.audit(cmd, access.reason, command.kind === 'verb' ? command.verb : command.word);
        return refusalText(access.reason);
      }
    }
    return undefined;
  }

  /** A verb that acts on a conversation; the answer for the caller. */
  private async carryOut(
    cmd: SlashCommandBody,
    command: Extract<ParsedCommand, { kind: 'verb' }> & {
      verb: Exclude<Verb, 'help' | 'tasks' | 'schedules'>;
    },
    target: Target,
  ): Promise<string> {
    const { control, submit } = this.d.deps;
    const by = `admin:slack:${cmd.user_id}` as const;
    // Arguments are the words after the verb that are not the thread reference.
    const words = command.rest.split(/\s+/).filter((w) => w && parseThreadRef(w) === undefined);
    switch (command.verb) {
      case 'kill':
        await control.kill(target.conversation, by, words.join(' ') || 'killed by an admin');
        return 'Killed. The conversation is quarantined until `/sandbot release`.';
      case 'release':
        return (await control.release(target.conversation, by))
          ? 'Released: the conversation runs again.'
          : 'That conversation was not quarantined.';
      case 'network':
        return runNetworkCommand(control, this.d.logger, { conversation: target.conversation, words, by });
      case 'skill':
      case 'skills': {
        if (!control.skills) return 'Skills are not set up on this sandbot (SANDBOT_SKILLS_DIR).';
        const skill = parseSkillCommand(command.verb === 'skills' ? ['list'] : words);
        return control.skills.run(target.conversation, skill, by);
      }
      case 'status':
        return statusText(await control.status(target.conversation));
      case 'done':
        return this.tasks.done(cmd, target);
      case 'schedule':
        return this.schedules.schedule(cmd, words.join(' '), target, isAdmin(this.d.policy, cmd.user_id));
      case 'stop': {
        const stopping = await control.stop(target.conversation, `slack:${cmd.user_id}`);
        return stopping ? 'Stopping the running turn.' : 'Nothing is running there right now.';
      }
      case 'reset':
        await submit(commandMessage(cmd, target, 'reset'));
        return 'Reset queued: the workspace and history of that conversation are wiped before its next turn.';
    }
  }

  private async target(
    cmd: SlashCommandBody,
    command: Extract<ParsedCommand, { kind: 'verb' }>,
  ): Promise<Target | undefined> {
    const team = cmd.team_id;
    const channel = command.target?.channel ?? cmd.channel_id;
    const dm = isDirectMessage(channel, dmType(cmd));
    if (command.target) return targetOf(team, channel, command.target.threadTs, command.target.threadTs);
    if (dm) return targetOf(team, channel, 'dm', undefined);
    const last = await this.d.deps.redis.get(this.d.keys.lastConversation(team, channel, cmd.user_id));
    const threadTs = last?.split(':')[3];
    return threadTs ? targetOf(team, channel, threadTs, threadTs) : undefined;
  }

  /** Filed under the conversation acted on when there is one, else under the command's channel. */
  private audit(cmd: SlashCommandBody, reason: string, command: string, on?: ConversationId): void {
    this.d.logger.warn(
      {
        audit: 'access_refused',
        platform: 'slack',
        team: cmd.team_id,
        channel: cmd.channel_id,
        user: cmd.user_id,
        reason,
        command,
        ...(on ? { conversation: on } : {}),
      },
      'slack: access refused',
    );
    const where = ConversationId.safeParse(on ?? `slack:${cmd.team_id}:${cmd.channel_id}:channel`);
    if (where.success) {
      void this.d.deps.audit?.record({
        conversation: where.data,
        actor: `user:slack:${cmd.user_id}`,
        kind: 'access.refused',
        data: { reason, command },
      });
    }
  }
}

/** Slack names a DM's channel "directmessage" in slash command payloads. */
function dmType(cmd: SlashCommandBody): 'im' | undefined {
  return cmd.channel_name === 'directmessage' ? 'im' : undefined;
}

/** `/sandbot schedule --new-thread <when> <task>`: each run in a thread of its own in this channel. */
const NEW_THREAD_FLAG = /^\s*--new-thread\b\s*/;

function targetOf(team: string, channel: string, threadTs: string, replyThread: string | undefined): Target {
  return {
    conversation: slackConversationId(team, channel, threadTs),
    route: { team, channel, ...(replyThread ? { thread_ts: replyThread } : {}) },
  };
}
