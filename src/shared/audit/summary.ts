import { AuditEvent } from '../../contracts/audit/events.js';
import type { ConversationId } from '../../contracts/conversation/id.js';
import type { AuditStorage } from './storage.js';

/** A conversation's recent activity, from the end of its audit log (for `status` in chat). */
export interface ActivitySummary {
  /** Time of the first event looked at. */
  since: string;
  turns: number;
  lastTurn?: { at: string; outcome: string };
  /** Tool name → calls. */
  tools: Record<string, number>;
  files: { created: number; changed: number; deleted: number; recent: string[] };
  network: { allowed: number; refused: number; hosts: string[] };
}

const RECENT = 5;
const TAIL_BYTES = 256 * 1024;

export function summarizeEvents(events: AuditEvent[]): ActivitySummary | undefined {
  const first = events[0];
  if (!first) return undefined;
  const summary: ActivitySummary = {
    since: first.time,
    turns: 0,
    tools: {},
    files: { created: 0, changed: 0, deleted: 0, recent: [] },
    network: { allowed: 0, refused: 0, hosts: [] },
  };
  const remember = (list: string[], item: string) => {
    const at = list.indexOf(item);
    if (at !== -1) list.splice(at, 1);
    list.unshift(item);
    list.splice(RECENT);
  };
  for (const event of events) {
    const data = event.data;
    if (event.kind === 'turn.finished') {
      summary.turns += 1;
      summary.lastTurn = { at: event.time, outcome: String(data.outcome) };
    } else if (event.kind === 'tool.call') {
      const name = String(data.name);
      summary.tools[name] = (summary.tools[name] ?? 0) + 1;
    } else if (event.kind.startsWith('file.')) {
      const which = event.kind.slice('file.'.length) as 'created' | 'changed' | 'deleted';
      summary.files[which] += 1;
      remember(summary.files.recent, String(data.path));
    } else if (event.kind === 'net.request') {
      summary.network[data.allowed === true ? 'allowed' : 'refused'] += 1;
      remember(summary.network.hosts, String(data.host));
    }
  }
  return summary;
}

/** The events of a file's text; lines that do not parse are skipped (verify names them). */
export function parseEvents(text: string): AuditEvent[] {
  const events: AuditEvent[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    try {
      const parsed = AuditEvent.safeParse(JSON.parse(line));
      if (parsed.success) events.push(parsed.data);
    } catch {
      // skipped
    }
  }
  return events;
}

export async function summarizeConversation(
  journal: Pick<AuditStorage, 'tail'>,
  conversation: ConversationId,
): Promise<ActivitySummary | undefined> {
  return summarizeEvents(parseEvents(await journal.tail(conversation, TAIL_BYTES)));
}

/** One paragraph for chat, e.g. "Recent activity: 2 turns (last: replied at …); tools: bash ×3; …". */
export function describeActivity(summary: ActivitySummary): string {
  const parts: string[] = [];
  const last = summary.lastTurn ? ` (last: ${summary.lastTurn.outcome} at ${summary.lastTurn.at})` : '';
  parts.push(`${summary.turns} turn${summary.turns === 1 ? '' : 's'}${last}`);
  const tools = Object.entries(summary.tools).map(([name, n]) => `${name} ×${n}`);
  parts.push(`tools: ${tools.join(', ') || 'none'}`);
  const { created, changed, deleted, recent } = summary.files;
  const files = [
    created ? `${created} created` : '',
    changed ? `${changed} changed` : '',
    deleted ? `${deleted} deleted` : '',
  ].filter(Boolean);
  parts.push(`files: ${files.join(', ') || 'none'}${recent.length ? ` (${recent.join(', ')})` : ''}`);
  const { allowed, refused, hosts } = summary.network;
  const net =
    allowed + refused === 0 ? 'none' : `${allowed} allowed, ${refused} refused (${hosts.join(', ')})`;
  parts.push(`network: ${net}`);
  return `Recent activity since ${summary.since}: ${parts.join('; ')}.`;
}
