import { z } from 'zod';
import { ConversationId } from '../conversation/id.js';

/**
 * A task is a conversation handed to sandbot in a group channel (a Slack thread from a mention, a
 * Discord thread from /ask or a mention), or a sub-agent's conversation started by `delegate`. The
 * registry keeps who asked, a short title and where the task stands; the pure rules live here.
 */

export const TaskStatus = z.enum(['queued', 'running', 'waiting', 'done', 'failed', 'killed']);
export type TaskStatus = z.infer<typeof TaskStatus>;

export const TaskOwner = z.object({
  platform: z.enum(['web', 'slack', 'discord']),
  id: z.string().min(1).max(128),
  name: z.string().max(128).optional(),
});
export type TaskOwner = z.infer<typeof TaskOwner>;

/** What is fixed when a task is made; its status lives beside it and changes. */
export const TaskRecord = z.object({
  conversation: ConversationId,
  /** The channel it belongs to, e.g. `slack:T1:C2` or `discord:<guild>:<channel>`. */
  scope: z.string().min(1).max(256),
  owner: TaskOwner,
  title: z.string().max(100),
  createdAt: z.iso.datetime(),
  /** Sub-agents only: the conversation that delegated this one. */
  parent: ConversationId.optional(),
  /** The top-level task of a delegation tree (itself for a top-level task). */
  root: ConversationId,
  /** 0 for a task a person started; a sub-agent is its parent's depth + 1. */
  depth: z.number().int().nonnegative().max(100),
  /** Sub-agents only: epoch ms by which the delegation tree must be finished. */
  deadline: z.number().int().positive().optional(),
});
export type TaskRecord = z.infer<typeof TaskRecord>;

export type Task = TaskRecord & { status: TaskStatus; updatedAt: string; closedBy?: string };

/** What moves a task from one status to the next. */
export type TaskEvent =
  | 'submitted' // a message for it was queued
  | 'started' // a turn of it began
  | 'replied' // a turn ended with an answer: it waits for input
  | 'stopped' // a turn was stopped by someone: it waits for input
  | 'failed'
  | 'killed'
  | 'closed'; // `done`

/**
 * The status after an event. A closed or killed task keeps that status when a late turn outcome
 * arrives; only new work (a message, a turn that starts after a release) opens it again.
 */
export function nextStatus(current: TaskStatus, event: TaskEvent): TaskStatus {
  switch (event) {
    case 'closed':
      return 'done';
    case 'killed':
      return 'killed';
    case 'started':
      return 'running';
    case 'submitted':
      if (current === 'killed' || current === 'running') return current;
      return 'queued';
    case 'replied':
    case 'stopped':
      return current === 'done' || current === 'killed' ? current : 'waiting';
    case 'failed':
      return current === 'done' || current === 'killed' ? current : 'failed';
  }
}

/** The transition for every status at once, so Redis can apply it atomically (see task-store.ts). */
export function transitionTable(event: TaskEvent): Record<TaskStatus, TaskStatus> {
  return Object.fromEntries(TaskStatus.options.map((s) => [s, nextStatus(s, event)])) as Record<
    TaskStatus,
    TaskStatus
  >;
}

/** Statuses in which a task still has something to do or say. */
export const OPEN_STATUSES: readonly TaskStatus[] = ['queued', 'running', 'waiting', 'failed'];

/**
 * The channel a conversation is a task of, or undefined when it is not one: a Slack thread in a
 * channel (not a DM), a Discord thread under a channel. DMs and web chats are conversations, not tasks.
 */
export function taskScopeOf(conversation: ConversationId): string | undefined {
  const [platform, ...segments] = conversation.split(':');
  if (segments.length !== 3) return undefined;
  const [first = '', channel = '', thread = ''] = segments;
  if (platform === 'slack' && !channel.startsWith('D') && thread !== 'dm' && /^\d/.test(thread)) {
    return `slack:${first}:${channel}`;
  }
  if (platform === 'discord' && first !== 'dm') return `discord:${first}:${channel}`;
  return undefined;
}

/** A short title from the request: its first non-empty line, cut to `max` characters. */
export function taskTitle(text: string, max = 80): string {
  const line = (text.split('\n').find((l) => l.trim() !== '') ?? '').replace(/\s+/g, ' ').trim();
  if (line === '') return 'task';
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

/** A sub-agent's conversation id ends in a `sub-<path>` segment no platform produces (e.g. sub-1.2). */
const SUB_SEGMENT = /^sub-\d+(\.\d+)*$/;

export function isSubAgent(conversation: string): boolean {
  return SUB_SEGMENT.test(conversation.slice(conversation.lastIndexOf(':') + 1));
}

/** "sub-1.2" for a sub-agent's conversation; undefined for any other. */
export function subAgentLabel(conversation: string): string | undefined {
  const last = conversation.slice(conversation.lastIndexOf(':') + 1);
  return SUB_SEGMENT.test(last) ? last : undefined;
}

/** The conversation that delegated to this sub-agent (`…:sub-1.2` → `…:sub-1` → `…`); undefined for others. */
export function parentConversationId(conversation: ConversationId): ConversationId | undefined {
  const label = subAgentLabel(conversation);
  if (!label) return undefined;
  const dot = label.lastIndexOf('.');
  const parent =
    dot === -1
      ? conversation.slice(0, conversation.lastIndexOf(':'))
      : conversation.slice(0, conversation.length - (label.length - dot));
  return ConversationId.parse(parent);
}

/**
 * The conversation id of a parent's n-th sub-agent: `<parent>:sub-n`, or for a sub-agent parent its
 * path extended (`…:sub-1` → `…:sub-1.n`), so ids stay within ConversationId's segment limit. Undefined
 * when the parent's id leaves no room.
 */
export function childConversationId(parent: ConversationId, n: number): ConversationId | undefined {
  const label = subAgentLabel(parent);
  const candidate = label ? `${parent}.${n}` : `${parent}:sub-${n}`;
  const parsed = ConversationId.safeParse(candidate);
  return parsed.success ? parsed.data : undefined;
}
