import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { ConversationId } from '../../src/contracts/conversation/id.js';
import type { InboundMessage } from '../../src/contracts/protocol/inbound.js';
import { describeActivity } from '../../src/shared/audit/summary.js';
import type { ConversationStatus } from '../../src/shared/queue/conversation-control.js';
import { SlackId, type SlackRoute, SlackTs } from './slack-event.js';

/** The parts of a slash command payload sandbot uses (the same over HTTP and Socket Mode). */
export const SlashCommandBody = z.object({
  command: z.string(),
  text: z.string().default(''),
  team_id: SlackId,
  channel_id: SlackId,
  channel_name: z.string().optional(),
  user_id: SlackId,
  user_name: z.string().optional(),
  response_url: z.string().url().optional(),
  trigger_id: z.string().optional(),
});
export type SlashCommandBody = z.infer<typeof SlashCommandBody>;

export const VERBS = [
  'status',
  'reset',
  'stop',
  'tasks',
  'done',
  'kill',
  'release',
  'network',
  'skill',
  'skills',
  'schedule',
  'schedules',
  'help',
] as const;
export type Verb = (typeof VERBS)[number];

/** A thread named in a command: a ts, or a message link (which also names the channel). */
export interface ThreadRef {
  channel?: string;
  threadTs: string;
}

export type ParsedCommand =
  | { kind: 'verb'; verb: Verb; target?: ThreadRef; rest: string }
  | { kind: 'unknown'; word: string };

/** `/sandbot stop`, `/sandbot status <thread link>`, `/sandbot` (help). */
export function parseCommandText(text: string): ParsedCommand {
  const [word = '', ...rest] = text.trim().split(/\s+/).filter(Boolean);
  const verb = (word === '' ? 'help' : word.toLowerCase()) as Verb;
  if (!VERBS.includes(verb)) return { kind: 'unknown', word };
  const args = rest.join(' ');
  const target = rest.map(parseThreadRef).find((ref) => ref !== undefined);
  return { kind: 'verb', verb, rest: args, ...(target ? { target } : {}) };
}

/**
 * Reads "1700000000.000100", or a message link such as
 * https://acme.slack.com/archives/C0123/p1700000000000100?thread_ts=1700000000.000050&cid=C0123
 * (Slack wraps links in a command's text in angle brackets).
 */
export function parseThreadRef(word: string): ThreadRef | undefined {
  const bare = word.replace(/^<|>$/g, '').split('|')[0] ?? '';
  if (SlackTs.safeParse(bare).success) return { threadTs: bare };
  let url: URL;
  try {
    url = new URL(bare);
  } catch {
    return undefined;
  }
  const match = /\/archives\/([A-Za-z0-9]+)\/p(\d{7,})$/.exec(url.pathname);
  if (!match?.[1] || !match[2]) return undefined;
  const fromLink = `${match[2].slice(0, -6)}.${match[2].slice(-6)}`;
  const threadTs = url.searchParams.get('thread_ts') ?? fromLink;
  if (!SlackId.safeParse(match[1]).success || !SlackTs.safeParse(threadTs).success) return undefined;
  return { channel: match[1], threadTs };
}

export const HELP_TEXT = [
  '*/sandbot* commands (answers only you see):',
  '• `/sandbot status` – is the agent working on your conversation here?',
  '• `/sandbot stop` – cancel the turn it is running',
  '• `/sandbot reset` – wipe the conversation’s workspace and history',
  '• `/sandbot tasks` – the tasks in this channel: status, who asked, age, a link to each thread',
  '• `/sandbot done` – close your task (admins: anyone’s); an ephemeral channel’s task is wiped',
  '• `/sandbot kill [reason]` – admins: kill the sandbox now and quarantine the conversation',
  '• `/sandbot release` – admins: let a quarantined conversation run again',
  '• `/sandbot network allow <host>[,<host>…]` | `network off` | `network` – admins: the conversation’s network grants',
  '• `/sandbot skills` – the vetted skills enabled in the conversation',
  '• `/sandbot skill enable <name>` | `skill disable <name>` – admins: turn an approved skill on or off there',
  '• `/sandbot schedule <when> <task>` – run a task on a schedule in your conversation here: `every weekday at 9:00 …`, `every 15m …`, `cron 0 9 * * 1-5 …`, `in 2 hours …`, `at <ISO time> …`',
  '• `/sandbot schedules` – the schedules in this channel; `schedules pause|resume|delete <id>` (whoever made it, or an admin)',
  'In a channel they act on your latest thread with me; name another with its link: `/sandbot stop <link>`.',
  'They act only on conversations you started (admins: any).',
].join('\n');

/** Status in words; times use Slack's date markup so each reader sees their own time zone. */
export function statusText(status: ConversationStatus): string {
  const waiting =
    status.pending === 0
      ? 'no messages waiting'
      : `${status.pending} message${status.pending === 1 ? '' : 's'} waiting`;
  const head = status.turnRunning
    ? `The agent is working on this conversation (${waiting}).`
    : `Idle, ${waiting}.`;
  // Recent activity from the audit log: tools used, files changed, network requests.
  const activity = status.activity ? `\n${describeActivity(status.activity)}` : '';
  if (status.lastTurnAt === undefined) return `${head} No turn has finished yet.${activity}`;
  const epoch = Math.floor(Date.parse(status.lastTurnAt) / 1000);
  return `${head} Last turn finished <!date^${epoch}^{date_short_pretty} at {time}|${status.lastTurnAt}>.${activity}`;
}

/** The queued message a conversation command (`reset`, `done`) becomes; its answer goes to the thread. */
export function commandMessage(
  cmd: SlashCommandBody,
  target: { conversation: ConversationId; route: SlackRoute },
  command: 'reset' | 'done',
): InboundMessage {
  return {
    id: `slack-command:${cmd.trigger_id ?? randomUUID()}`,
    conversation: target.conversation,
    platform: 'slack',
    user: { id: cmd.user_id, ...(cmd.user_name ? { name: cmd.user_name.slice(0, 128) } : {}) },
    text: '',
    receivedAt: new Date().toISOString(),
    route: target.route,
    files: [],
    command,
  };
}
