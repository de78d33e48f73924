import type { Redis } from 'ioredis';
import type { Approval } from '../../contracts/approvals/approval.js';
import type { AuditEvent } from '../../contracts/audit/events.js';
import { type ConversationId, conversationKey, platformOf } from '../../contracts/conversation/id.js';
import { instanceKeys } from '../../contracts/redis/keys.js';
import type { Task } from '../../contracts/tasks/task.js';
import type { AuditStorage } from '../../shared/audit/storage.js';
import { parseEvents } from '../../shared/audit/summary.js';
import type { ConversationControl } from '../../shared/queue/conversation-control.js';
import type { ConversationStore } from '../../shared/queue/conversation-store.js';
import type { ApprovalStore } from '../../shared/stores/approval-store.js';
import type { QuarantineRecord } from '../../shared/stores/quarantine.js';
import {
  type PendingSkill,
  readSandboxReports,
  type SandboxStat,
} from '../../shared/stores/sandbox-report.js';
import type { TaskStore } from '../../shared/stores/task-store.js';
import { type Board, boardOf } from '../commands/task-board.js';

/** What the console reads, all from Redis and the audit files (the gateway has no engine client). */
export interface ConsoleSources {
  instance: string;
  redis: Redis;
  store: ConversationStore;
  control: ConversationControl;
  approvals: ApprovalStore;
  tasks: TaskStore;
  journal: AuditStorage;
}

export type ConversationState = 'running' | 'idle' | 'quarantined';

export interface ConversationRow {
  conversation: ConversationId;
  platform: 'web' | 'slack' | 'discord';
  channel: string;
  owner?: string;
  /** Epoch ms of the last audit event or finished turn. */
  lastActivity?: number;
  state: ConversationState;
  pending: number;
  quarantine?: QuarantineRecord;
}

export interface WorkerSandboxes {
  worker: string;
  at: number;
  sandboxes: SandboxStat[];
}

export interface Overview {
  conversations: ConversationRow[];
  workers: WorkerSandboxes[];
  approvals: Approval[];
  board: Board;
  /** Undefined when no live worker reports its skills folder. */
  pendingSkills?: PendingSkill[];
}

/** Conversations listed at most. */
const MAX_ROWS = 200;

/** The channel part of a conversation id, as a person reads it. */
export function channelOf(conversation: ConversationId): string {
  const [platform, ...rest] = conversation.split(':');
  if (platform === 'web') return 'web chat';
  if (platform === 'discord' && rest[0] === 'dm') return `DM ${rest[1] ?? ''}`;
  if (platform === 'slack' && rest[2] === 'dm') return `DM ${rest[1] ?? ''}`;
  return rest.slice(0, 2).join(':');
}

/** Running first, then by last activity, newest first. */
export function orderRows(rows: ConversationRow[]): ConversationRow[] {
  const rank = (r: ConversationRow) => (r.state === 'running' ? 0 : 1);
  return [...rows].sort((a, b) => rank(a) - rank(b) || (b.lastActivity ?? 0) - (a.lastActivity ?? 0));
}

export async function conversationRow(
  sources: ConsoleSources,
  conversation: ConversationId,
): Promise<ConversationRow> {
  const [holder, pending, quarantine, owner, lastTurn, written] = await Promise.all([
    sources.store.leaseHolder(conversation),
    sources.store.pendingCount(conversation),
    sources.control.quarantined(conversation),
    sources.control.owner(conversation),
    sources.redis.zscore(instanceKeys(sources.instance).lastUsed, conversation),
    sources.journal.lastWritten(conversationKey(conversation)).catch(() => undefined),
  ]);
  const last = Math.max(Number(lastTurn ?? 0), written ?? 0);
  return {
    conversation,
    platform: platformOf(conversation),
    channel: channelOf(conversation),
    ...(owner ? { owner } : {}),
    ...(last > 0 ? { lastActivity: Math.round(last) } : {}),
    state: quarantine ? 'quarantined' : holder !== null ? 'running' : 'idle',
    pending,
    ...(quarantine ? { quarantine } : {}),
  };
}

/** Everything the overview page shows. */
export async function readOverview(sources: ConsoleSources, now = Date.now()): Promise<Overview> {
  const keys = instanceKeys(sources.instance);
  const [active, recent, reports, approvals, running] = await Promise.all([
    sources.store.activeConversations(),
    sources.redis.zrevrange(keys.lastUsed, 0, MAX_ROWS - 1),
    readSandboxReports(sources.redis, sources.instance, now),
    sources.approvals.pending(),
    sources.tasks.running(),
  ]);
  const workers = [...reports].map(([worker, r]) => ({ worker, at: r.at, sandboxes: r.sandboxes }));
  const ids = new Set<string>([
    ...active,
    ...recent,
    ...workers.flatMap((w) => w.sandboxes.filter((s) => !s.pooled).map((s) => s.conversation)),
    ...approvals.map((a) => a.conversation),
  ]);
  const listed = [...ids].slice(0, MAX_ROWS) as ConversationId[];
  const rows = await Promise.all(listed.map((c) => conversationRow(sources, c)));
  const tasks = new Map<string, Task>(running.map((t) => [t.conversation, t]));
  for (const t of await sources.tasks.getMany(listed)) tasks.set(t.conversation, t);
  const skillReports = [...reports.values()].filter((r) => r.pendingSkills !== undefined);
  const skills = new Map(skillReports.flatMap((r) => r.pendingSkills ?? []).map((s) => [s.ref, s]));
  return {
    conversations: orderRows(rows),
    workers,
    approvals,
    board: boardOf([...tasks.values()], now),
    ...(skillReports.length ? { pendingSkills: [...skills.values()] } : {}),
  };
}

export interface ConversationDetail {
  row: ConversationRow;
  grants: string[];
  events: AuditEvent[];
  approvals: Approval[];
  sandbox?: SandboxStat & { worker: string };
}

/** Events shown on a conversation's page at most (its newest). */
export const TIMELINE_EVENTS = 300;
const TIMELINE_BYTES = 1024 * 1024;

export async function readConversation(
  sources: ConsoleSources,
  conversation: ConversationId,
): Promise<ConversationDetail> {
  const [row, grants, text, approvals, reports] = await Promise.all([
    conversationRow(sources, conversation),
    sources.control.network.grantsFor(conversation),
    sources.journal.tail(conversation, TIMELINE_BYTES),
    sources.approvals.pending(),
    readSandboxReports(sources.redis, sources.instance),
  ]);
  let sandbox: ConversationDetail['sandbox'];
  for (const [worker, report] of reports) {
    const found = report.sandboxes.find((s) => s.conversation === conversation);
    if (found) sandbox = { ...found, worker };
  }
  return {
    row,
    grants,
    events: parseEvents(text).slice(-TIMELINE_EVENTS),
    approvals: approvals.filter((a) => a.conversation === conversation),
    ...(sandbox ? { sandbox } : {}),
  };
}
