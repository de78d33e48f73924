import { type ConversationId, conversationKey } from '../../contracts/conversation/id.js';
import type { AuditStore } from './audit-store.js';
import { type ChainReport, verifyChain } from './chain.js';
import type { AuditStorage } from './storage.js';

export interface Verdict {
  file: string;
  report: ChainReport;
  /** What is wrong, naming the file, line and seq; absent when the chain holds. */
  problem?: string;
  /** Something worth knowing that is not a break (events still queued, Redis not asked). */
  note?: string;
}

/**
 * Checks the chains of one conversation's file or of all files (or their rows in PostgreSQL: the same
 * lines). With the store, also checks the end against the head Redis remembers, which catches events
 * cut off the end of a file (or deleted last rows).
 */
export async function verifyAudit(
  journal: AuditStorage,
  store: Pick<AuditStore, 'head' | 'pendingCount'> | undefined,
  conversation?: ConversationId,
): Promise<Verdict[]> {
  const files = conversation
    ? [{ key: conversationKey(conversation), path: journal.fileOf(conversation) }]
    : await journal.list();
  const verdicts: Verdict[] = [];
  for (const { key, path } of files) {
    const text = await journal.readKey(key);
    if (text === undefined) {
      verdicts.push({ file: path, report: emptyReport(), problem: `${path}: no audit file` });
      continue;
    }
    const report = verifyChain(text, key);
    const verdict: Verdict = { file: path, report };
    if (report.broken) {
      const { line, seq, problem } = report.broken;
      verdict.problem = `${journal.locate(path, line, seq, idAt(text, line))}: ${problem}`;
    } else if (store && report.conversation) {
      const at = (line: number, seq: number) => journal.locate(path, line, seq, idAt(text, line));
      Object.assign(verdict, await checkHead(store, report.conversation, report, path, at));
    }
    verdicts.push(verdict);
  }
  return verdicts;
}

async function checkHead(
  store: Pick<AuditStore, 'head' | 'pendingCount'>,
  conversation: ConversationId,
  report: ChainReport,
  path: string,
  at: (line: number, seq: number) => string,
): Promise<Pick<Verdict, 'problem' | 'note'>> {
  let head: Awaited<ReturnType<AuditStore['head']>>;
  let pending: number;
  try {
    [head, pending] = await Promise.all([store.head(conversation), store.pendingCount(conversation)]);
  } catch (error) {
    return { note: `end of the chain not checked: Redis did not answer (${(error as Error).message})` };
  }
  const queued = pending > 0 ? { note: `${pending} newer events still queued for writing` } : {};
  if (!head || head.seq < report.lastSeq) return queued;
  if (head.seq > report.lastSeq) {
    const missing = head.seq - report.lastSeq;
    return {
      problem: `${path}: ends at seq ${report.lastSeq} but seq ${head.seq} was written: the last ${missing} event${missing === 1 ? ' is' : 's are'} missing`,
    };
  }
  if (head.hash !== report.lastHash) {
    return { problem: `${at(report.events, report.lastSeq)}: differs from the event written` };
  }
  return queued;
}

/** The id of the event on a line (1-based), when it has one: names the event in the message. */
function idAt(text: string, line: number): string | undefined {
  try {
    const id = (JSON.parse(text.split('\n')[line - 1] ?? '') as { id?: unknown }).id;
    return typeof id === 'string' ? id : undefined;
  } catch {
    return undefined;
  }
}

function emptyReport(): ChainReport {
  return { events: 0, lastSeq: 0, lastHash: '' };
}
