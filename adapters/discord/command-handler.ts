import { runNetworkCommand } from '../../src/gateway/commands/network-command.js';
import { conversationOwner, mayAct, ownerRefusalText } from '../../src/gateway/commands/owner-check.js';
import { limitNotice } from '../../src/gateway/rate-limits.js';
import { describeActivity } from '../../src/shared/audit/summary.js';
import type { ConversationStatus } from '../../src/shared/queue/conversation-control.js';
import { parseSkillCommand } from '../../src/shared/stores/skill-control.js';
import { isAdmin } from './access.js';
import { channelRoute, discordConversationId, interactionRoute, threadName } from './conversation.js';
import { DiscordErrorCode, discordErrorCode } from './discord-api.js';
import { admitMessage, type HandlerContext, logRefusal, submitMessage } from './handler-context.js';
import { InteractionCreate, type SlashCommand, toSlashCommand } from './payloads.js';
import { type CommandPlan, planCommand } from './plans.js';
import {
  scheduleFromDiscord,
  schedulesFromDiscord,
  scheduleThreadsFromDiscord,
} from './schedule-commands.js';
import { closeTaskFromDiscord, taskBoardText } from './task-commands.js';

/** The answer to /status. */
export function describeStatus(status: ConversationStatus): string {
  const head = status.turnRunning ? '⏳ Working on a turn now.' : '💤 Idle.';
  const plural = status.pending === 1 ? '' : 's';
  const queue = status.pending
    ? ` ${status.pending} message${plural} ${status.turnRunning ? 'in this and the next turns' : 'waiting'}.`
    : '';
  const last = status.lastTurnAt
    ? ` Last turn finished <t:${Math.floor(Date.parse(status.lastTurnAt) / 1000)}:R>.`
    : status.turnRunning
      ? ''
      : ' No turn yet.';
  const activity = status.activity ? `\n${describeActivity(status.activity)}` : '';
  return `${head}${queue}${last}${activity}`;
}

/** The task as shown in the channel: who asked, and what (cut to fit a message). */
function askedText(command: SlashCommand, task: string): string {
  const shown = task.length > 1800 ? `${task.slice(0, 1799)}…` : task;
  return `<@${command.user.id}> asked:\n>>> ${shown}`;
}

/**
 * INTERACTION_CREATE → an answer within Discord's 3 seconds: refusals and notices at once (ephemeral),
 * everything else deferred first and then edited with the outcome.
 */
export async function handleInteractionCreate(context: HandlerContext, raw: unknown): Promise<void> {
  const { logger } = context.deps;
  const parsed = InteractionCreate.safeParse(raw);
  if (!parsed.success) {
    logger.warn(
      { issues: parsed.error.issues.slice(0, 3) },
      'discord: INTERACTION_CREATE not understood; ignored',
    );
    return;
  }
  const command = toSlashCommand(parsed.data);
  if (!command) return;
  const plan = await ownerChecked(context, command, planCommand(command, context.policy));
  try {
    if (plan.kind === 'refuse' || plan.kind === 'notice') {
      if (plan.kind === 'refuse') {
        logRefusal(context, {
          user: command.user.id,
          place: command.place,
          reason: plan.reason,
          via: `/${command.name}`,
        });
      }
      await context.api.respond(command, plan.message, true);
      return;
    }
    await context.api.defer(command);
  } catch (error) {
    const code = discordErrorCode(error);
    // A replayed event (after a RESUME) or an answer too late: someone already answered, or no one can.
    if (code === DiscordErrorCode.AlreadyAcknowledged || code === DiscordErrorCode.UnknownInteraction) {
      logger.info({ interaction: command.id, code }, 'discord: interaction already answered or expired');
      return;
    }
    throw error;
  }
  try {
    await carryOut(context, command, plan);
  } catch (error) {
    logger.error({ err: error, command: command.name }, 'discord: command failed');
    await context.api
      .editOriginal(command, {
        content: `sandbot could not do /${command.name} right now; please try again.`,
      })
      .catch(() => undefined);
  }
}

/**
 * A command acts on a conversation only for the person who started it, or an admin. `/ask` is not
 * checked: it adds to the thread like any message there.
 */
async function ownerChecked(
  context: HandlerContext,
  command: SlashCommand,
  plan: CommandPlan,
): Promise<CommandPlan> {
  if (!('conversation' in plan) || plan.kind === 'ask-here') return plan;
  const sender = `discord:${command.user.id}` as const;
  // A DM has one person in it: typed there, the command is its owner's.
  const owner =
    command.place.kind === 'dm' ? sender : await conversationOwner(context.deps, plan.conversation);
  if (mayAct(sender, owner, isAdmin(context.policy, command.roles))) return plan;
  const refusal = ownerRefusalText(plan.conversation, owner, {
    verb: command.name,
    shown: `/${command.name}`,
  });
  return { kind: 'refuse', reason: 'owner', message: refusal };
}

type CarriedOut = Exclude<CommandPlan, { kind: 'refuse' | 'notice' }>;
type Submitted = Extract<CarriedOut, { kind: 'ask-thread' | 'ask-here' | 'run' | 'reset' }>;

async function carryOut(context: HandlerContext, command: SlashCommand, plan: CarriedOut): Promise<void> {
  if (
    plan.kind === 'ask-thread' ||
    plan.kind === 'ask-here' ||
    plan.kind === 'run' ||
    plan.kind === 'reset'
  ) {
    return submitPlan(context, command, plan);
  }
  // A close is answered by the worker, in order, editing this response; only its refusals answer here.
  const content = await answerFor(context, command, plan);
  if (content !== undefined) await context.api.editOriginal(command, { content });
}

/** The commands that queue a message: a task (in a new thread or here), a command line, a reset. */
async function submitPlan(context: HandlerContext, command: SlashCommand, plan: Submitted): Promise<void> {
  const { api } = context;
  const receivedAt = Date.now();
  // A task is a message by another door: limited like one (`run` and `reset` are the owner's commands).
  if (plan.kind === 'ask-thread' || plan.kind === 'ask-here') {
    const admission = await admitMessage(context, {
      user: command.user.id,
      messageId: command.id,
      ...(plan.kind === 'ask-here' ? { conversation: plan.conversation } : { startsConversation: true }),
    });
    if (!admission?.allowed) {
      // The command's own (deferred) response: it must say something, so every refusal is answered.
      const content = admission
        ? limitNotice(admission)
        : 'sandbot could not take this right now; please try again.';
      await api.editOriginal(command, { content });
      return;
    }
  }
  switch (plan.kind) {
    case 'ask-thread': {
      const messageId = await api.editOriginal(command, { content: askedText(command, plan.task) });
      const threadId = await api.startThread(plan.channelId, messageId, threadName(plan.task));
      await context.threads.add(threadId);
      await submitMessage(context, {
        id: command.id,
        conversation: discordConversationId(plan.guildId, threadId, plan.channelId),
        user: command.user,
        text: plan.task,
        route: channelRoute(threadId, plan.guildId),
      });
      return;
    }
    case 'ask-here':
      await api.editOriginal(command, { content: askedText(command, plan.task) });
      if (plan.guildId) await context.threads.add(plan.channelId);
      await submitMessage(context, {
        id: command.id,
        conversation: plan.conversation,
        user: command.user,
        text: plan.task,
        route: channelRoute(plan.channelId, plan.guildId),
      });
      return;
    case 'run':
    case 'reset':
      // The worker's answer edits this command's response (progress, then the output).
      if (plan.guildId) await context.threads.add(plan.channelId);
      await submitMessage(context, {
        id: command.id,
        conversation: plan.conversation,
        user: command.user,
        text: plan.kind === 'run' ? plan.command : '',
        route: interactionRoute(plan.channelId, plan.guildId, command, receivedAt),
        command: plan.kind,
      });
      return;
  }
}

/** What the command's response is edited to say; undefined: nothing now (the worker answers). */
async function answerFor(
  context: HandlerContext,
  command: SlashCommand,
  plan: Exclude<CarriedOut, Submitted>,
): Promise<string | undefined> {
  const { control } = context.deps;
  const by = `admin:discord:${command.user.id}` as const;
  switch (plan.kind) {
    case 'tasks':
      return taskBoardText(context, plan.scope, plan.channelId);
    case 'schedule':
      return scheduleFromDiscord(context, command, plan);
    case 'schedule-threads':
      return scheduleThreadsFromDiscord(context, command, plan);
    case 'schedules':
      return schedulesFromDiscord(context, command, plan);
    case 'done':
      return closeTaskFromDiscord(context, command, plan);
    case 'status':
      return describeStatus(await control.status(plan.conversation));
    case 'kill':
      await control.kill(plan.conversation, by, 'killed by an admin');
      return '☠️ Killed. This conversation is quarantined until an admin releases it (`sandbot sandbox release`).';
    case 'skill': {
      const content = control.skills
        ? await control.skills.run(plan.conversation, parseSkillCommand(plan.words), by)
        : 'Skills are not set up on this sandbot (SANDBOT_SKILLS_DIR).';
      return content.slice(0, 2000);
    }
    case 'network':
      return runNetworkCommand(control, context.deps.logger, {
        conversation: plan.conversation,
        words: plan.words,
        by,
      });
    case 'stop': {
      const stopping = await control.stop(plan.conversation, `discord:${command.user.id}`);
      return stopping ? '🛑 Stopping the running turn…' : 'Nothing is running in this conversation.';
    }
  }
}
