import type { ConversationId } from '../../src/contracts/conversation/id.js';
import { channelOf } from '../../src/shared/schedules/schedule-store.js';
import { type AccessPolicy, decideAccess } from './access.js';
import { ADMIN_COMMANDS, CONVERSATION_COMMANDS, isCommandName } from './commands.js';
import { placeConversationId } from './conversation.js';
import type { Place, SlashCommand, UserMessage } from './payloads.js';

/**
 * What to do with a message or a command: pure decisions, so every rule is testable without Discord.
 * The shells (message-handler.ts, command-handler.ts) carry them out.
 */

type Refusal = { kind: 'refuse'; reason: string; message: string };

export type MessagePlan =
  | { kind: 'ignore' }
  | Refusal
  /** Start a thread from the message (a mention in a channel), then submit there. */
  | { kind: 'open-thread'; guildId: string; channelId: string }
  /** Submit to the conversation of this thread or DM; `track`: remember the thread as sandbot's. */
  | { kind: 'submit'; conversation: ConversationId; channelId: string; guildId?: string; track: boolean };

export function planMessage(
  message: Extract<UserMessage, { kind: 'message' }>,
  place: Place,
  context: { botId: string; trackedThread: boolean; policy: AccessPolicy },
): MessagePlan {
  const addressed =
    place.kind === 'dm' ||
    message.mentioned ||
    (place.kind === 'thread' && (context.trackedThread || place.ownerId === context.botId));
  if (!addressed) return { kind: 'ignore' };
  const access = decideAccess(context.policy, place, message.roles);
  if (!access.allowed) return { kind: 'refuse', reason: access.reason, message: access.message };
  if (place.kind === 'dm') {
    return {
      kind: 'submit',
      conversation: placeConversationId(place),
      channelId: place.channelId,
      track: false,
    };
  }
  if (place.kind === 'thread') {
    return {
      kind: 'submit',
      conversation: placeConversationId(place),
      channelId: place.channelId,
      guildId: place.guildId,
      track: !context.trackedThread && place.ownerId !== context.botId,
    };
  }
  // A mention where no thread can start (a voice channel's chat, a forum) is not a conversation.
  return place.threadable
    ? { kind: 'open-thread', guildId: place.guildId, channelId: place.channelId }
    : { kind: 'ignore' };
}

interface Here {
  conversation: ConversationId;
  channelId: string;
  guildId?: string;
}

export type CommandPlan =
  | Refusal
  /** An ephemeral answer that is not a refusal (e.g. "not available yet"). */
  | { kind: 'notice'; message: string }
  | { kind: 'ask-thread'; task: string; channelId: string; guildId: string }
  | ({ kind: 'ask-here'; task: string } & Here)
  | ({ kind: 'run'; command: string } & Here)
  | ({ kind: 'status' | 'stop' | 'kill' } & Here)
  /** Apart from status, stop and kill: a reset is queued for the worker, they answer at once. */
  | ({ kind: 'reset' } & Here)
  | ({ kind: 'network'; words: string[] } & Here)
  | ({ kind: 'skill'; words: string[] } & Here)
  /** The task board of a channel (`scope`: discord:<guild>:<channel>). */
  | { kind: 'tasks'; scope: string; channelId: string }
  /** Close the task of this thread. */
  | ({ kind: 'done' } & Here)
  /** Make a schedule that runs in this conversation. */
  | ({ kind: 'schedule'; when: string; task: string } & Here)
  /** Make a schedule of a channel whose runs each start a thread there. */
  | { kind: 'schedule-threads'; when: string; task: string; channelId: string; guildId: string }
  /** List or manage the schedules of a channel (no conversation: whoever made one, or an admin, decides). */
  | { kind: 'schedules'; words: string[]; channel: string };

export function planCommand(command: SlashCommand, policy: AccessPolicy): CommandPlan {
  const { name, place } = command;
  if (!isCommandName(name)) return { kind: 'notice', message: `sandbot has no /${name} command.` };
  const access = decideAccess(policy, place, command.roles, ADMIN_COMMANDS.includes(name) ? 'admin' : 'user');
  if (!access.allowed) return { kind: 'refuse', reason: access.reason, message: access.message };
  if (name === 'ask') {
    const task = (command.options.task ?? '').trim();
    if (task === '') return { kind: 'notice', message: 'Tell sandbot what to do: `/ask task: …`.' };
    if (place.kind === 'channel') {
      return place.threadable
        ? { kind: 'ask-thread', task, channelId: place.channelId, guildId: place.guildId }
        : { kind: 'notice', message: 'Use /ask in a text channel, a thread or a DM.' };
    }
    return { kind: 'ask-here', task, ...here(place) };
  }
  if (name === 'tasks') {
    if (place.kind === 'dm')
      return { kind: 'notice', message: 'Tasks live in server channels: use /tasks there.' };
    const channelId = place.kind === 'thread' ? (place.parentId ?? place.channelId) : place.channelId;
    return { kind: 'tasks', scope: `discord:${place.guildId}:${channelId}`, channelId };
  }
  if (name === 'schedules') {
    const words = [command.options.action ?? 'list', command.options.id ?? ''].filter((w) => w.trim() !== '');
    return { kind: 'schedules', words, channel: scheduleChannel(place) };
  }
  if (name === 'schedule' && command.options.new_thread === 'true') return threadsSchedule(command, place);
  if (CONVERSATION_COMMANDS.includes(name) && place.kind === 'channel') {
    return {
      kind: 'notice',
      message: `Use /${name} inside a sandbot thread or a DM: each one is a conversation.`,
    };
  }
  if (place.kind === 'channel') return { kind: 'notice', message: `/${name} cannot be used here.` };
  if (name === 'run') {
    const shell = (command.options.command ?? '').trim();
    if (shell === '') return { kind: 'notice', message: 'Give the command to run: `/run command: ls -la`.' };
    return { kind: 'run', command: shell, ...here(place) };
  }
  if (name === 'schedule') {
    const when = (command.options.when ?? '').trim();
    const task = (command.options.task ?? '').trim();
    return { kind: 'schedule', when, task, ...here(place) };
  }
  if (name === 'skill') {
    // `/skill` lists; `action: enable name: weather` enables; `action: disable name: weather` disables.
    const words = [command.options.action ?? 'list', command.options.name ?? ''].filter(
      (w) => w.trim() !== '',
    );
    return { kind: 'skill', words, ...here(place) };
  }
  if (name === 'network') {
    // `/network` shows the grants; `hosts: off` turns the network off; `hosts: a.com,b.org` allows them.
    const hosts = (command.options.hosts ?? '').trim();
    const words = hosts === '' ? ['show'] : hosts.toLowerCase() === 'off' ? ['off'] : ['allow', hosts];
    return { kind: 'network', words, ...here(place) };
  }
  return { kind: name, ...here(place) };
}

/** `/schedule … new_thread: True`: the channel's (a thread's parent's), never a DM's. */
function threadsSchedule(command: SlashCommand, place: Place): CommandPlan {
  if (place.kind === 'dm') {
    return {
      kind: 'notice',
      message: 'A run in a thread of its own needs a server channel: use new_thread there.',
    };
  }
  const channelId = place.kind === 'thread' ? (place.parentId ?? place.channelId) : place.channelId;
  const when = (command.options.when ?? '').trim();
  const task = (command.options.task ?? '').trim();
  return { kind: 'schedule-threads', when, task, channelId, guildId: place.guildId };
}

/** The channel whose schedules `/schedules` shows: a thread's channel, a channel, or a DM itself. */
function scheduleChannel(place: Place): string {
  if (place.kind === 'channel') return `discord:${place.guildId}:${place.channelId}`;
  return channelOf(placeConversationId(place));
}

function here(place: Exclude<Place, { kind: 'channel' }>): Here {
  const guildId = place.kind === 'thread' ? place.guildId : undefined;
  return {
    conversation: placeConversationId(place),
    channelId: place.channelId,
    ...(guildId ? { guildId } : {}),
  };
}
