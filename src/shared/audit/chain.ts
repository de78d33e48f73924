import { createHash } from 'node:crypto';
import { type AuditBody, AuditEvent } from '../../contracts/audit/events.js';
import { type ConversationId, conversationKey } from '../../contracts/conversation/id.js';

/** The `prevHash` of a conversation's first event. */
export const GENESIS_HASH = '0'.repeat(64);

/** JSON with object keys sorted at every level, so the same event always hashes the same. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v ?? null)).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** sha256 over the canonical JSON of an event without its own `hash`. */
export function hashOf(event: Record<string, unknown>): string {
  const { hash: _ignored, ...rest } = event;
  return createHash('sha256').update(canonicalJson(rest)).digest('hex');
}

/** Gives a queued body its place in the chain: the next seq, the previous event's hash, its own hash. */
export function seal(body: AuditBody, seq: number, prevHash: string): AuditEvent {
  // Through JSON first, so the hash is of exactly what the stored line will hold.
  const plain = JSON.parse(JSON.stringify({ ...body, seq, prevHash })) as Record<string, unknown>;
  return { ...(plain as Omit<AuditEvent, 'hash'>), hash: hashOf(plain) };
}

export interface ChainBreak {
  /** 1-based line number in the file. */
  line: number;
  seq?: number;
  problem: string;
}

export interface ChainReport {
  conversation?: ConversationId;
  events: number;
  lastSeq: number;
  lastHash: string;
  broken?: ChainBreak;
}

/**
 * Checks one conversation's file, line by line: each line parses as an event of that conversation, its
 * seq follows the previous one, its prevHash is the previous event's hash and its hash matches its
 * content. Stops at the first break, naming it. `fileKey` is the file's name without `.jsonl`.
 */
export function verifyChain(text: string, fileKey?: string): ChainReport {
  const report: ChainReport = { events: 0, lastSeq: 0, lastHash: GENESIS_HASH };
  const lines = text.split('\n');
  const last = lines.pop();
  const fail = (line: number, problem: string, seq?: number): ChainReport => ({
    ...report,
    broken: { line, ...(seq === undefined ? {} : { seq }), problem },
  });
  for (const [index, line] of lines.entries()) {
    const n = index + 1;
    let raw: unknown;
    try {
      raw = JSON.parse(line);
    } catch {
      return fail(n, line.trim() === '' ? 'empty line' : 'not JSON');
    }
    const parsed = AuditEvent.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const seq =
        typeof (raw as { seq?: unknown })?.seq === 'number' ? (raw as { seq: number }).seq : undefined;
      return fail(n, `not an audit event (${issue?.path.join('.') || 'event'}: ${issue?.message})`, seq);
    }
    const event = parsed.data;
    const conversation = report.conversation ?? event.conversation;
    if (event.conversation !== conversation) {
      return fail(n, `belongs to ${event.conversation}, not ${conversation}`, event.seq);
    }
    if (fileKey !== undefined && conversationKey(conversation) !== fileKey) {
      return fail(n, `is an event of ${conversation}, whose file is ${conversationKey(conversation)}.jsonl`);
    }
    const expected = report.lastSeq + 1;
    if (event.seq !== expected) {
      const problem =
        event.seq > expected
          ? `seq ${expected}${event.seq - 1 > expected ? `–${event.seq - 1}` : ''} missing (deleted events)`
          : `seq ${event.seq} again after ${report.lastSeq} (repeated or reordered)`;
      return fail(n, problem, event.seq);
    }
    if (event.prevHash !== report.lastHash) {
      return fail(n, 'prevHash does not match the previous event (an earlier event was changed)', event.seq);
    }
    if (hashOf(raw as Record<string, unknown>) !== event.hash) {
      return fail(n, 'content does not match its hash (the event was edited)', event.seq);
    }
    report.conversation = conversation;
    report.events += 1;
    report.lastSeq = event.seq;
    report.lastHash = event.hash;
  }
  if (last !== undefined && last !== '') return fail(lines.length + 1, 'incomplete last line (no newline)');
  return report;
}
