import { describeGrants, parseNetworkCommand } from '../../src/gateway/commands/network-command.js';
import { describeActivity } from '../../src/shared/audit/summary.js';
import type { ConversationStatus } from '../../src/shared/queue/conversation-control.js';
import { parseSkillCommand } from '../../src/shared/stores/skill-control.js';
import { channelRoute, discordConversationId, interactionRoute, threadName } from './conversation.js';
import { DiscordErrorCode, discordErrorCode } from './discord-api.js';
import { type HandlerContext, logRefusal, submitMessage } from './handler-context.js';
import { InteractionCreate, type SlashCommand, toSlashCommand } from './payloads.js';
import { type CommandPlan, planCommand } from './plans.js';
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
  const plan = planCommand(command, context.policy);
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

async function carryOut(
  context: HandlerContext,
  command: SlashCommand,
  plan: Exclude<CommandPlan, { kind: 'refuse' | 'notice' }>,
): Promise<void> {
  const { api } = context;
  const receivedAt = Date.now();
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
    case 'tasks':
      await api.editOriginal(command, { content: await taskBoardText(context, plan.scope, plan.channelId) });
      return;
    case 'done': {
      // Refusals answer here; a close is answered by the worker, in order, editing this response.
      const refusal = await closeTaskFromDiscord(context, command, plan);
      if (refusal) await api.editOriginal(command, { content: refusal });
      return;
    }
    case 'status': {
      const status = await context.deps.control.status(plan.conversation);
      await api.editOriginal(command, { content: describeStatus(status) });
      return;
    }
    case 'kill':
      await context.deps.control.kill(
        plan.conversation,
        `admin:discord:${command.user.id}`,
        'killed by an admin',
      );
      await api.editOriginal(command, {
        content:
          '☠️ Killed. This conversation is quarantined until an admin releases it (`sandbot sandbox release`).',
      });
      return;
    case 'skill': {
      const skills = context.deps.control.skills;
      const by = `admin:discord:${command.user.id}` as const;
      const content = skills
        ? await skills.run(plan.conversation, parseSkillCommand(plan.words), by)
        : 'Skills are not set up on this sandbot (SANDBOT_SKILLS_DIR).';
      await api.editOriginal(command, { content: content.slice(0, 2000) });
      return;
    }
    case 'network': {
      const network = parseNetworkCommand(plan.words);
      if (network.action === 'invalid')
        return void (await api.editOriginal(command, { content: network.message }));
      const { control } = context.deps;
      const by = `admin:discord:${command.user.id}` as const;
      if (network.action === 'allow') await control.allowNetwork(plan.conversation, network.grants, by);
      if (network.action === 'off') await control.networkOff(plan.conversation, by);
      if (network.action !== 'show') {
        context.deps.logger.warn(
          { audit: 'policy.change', conversation: plan.conversation, by, network },
          'network policy changed',
        );
      }
      const grants = await control.network.grantsFor(plan.conversation);
      await api.editOriginal(command, {
        content: `This conversation now has ${describeGrants(grants)}; it applies from its next turn.`,
      });
      return;
    }
    case 'stop': {
      const stopping = await context.deps.control.stop(plan.conversation, `discord:${command.user.id}`);
      await api.editOriginal(command, {
        content: stopping ? '🛑 Stopping the running turn…' : 'Nothing is running in this conversation.',
      });
      return;
    }
  }
}
