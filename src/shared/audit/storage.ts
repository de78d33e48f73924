import type { AuditEvent } from '../../contracts/audit/events.js';
import type { ConversationId } from '../../contracts/conversation/id.js';

/** The last event of a conversation: where the chain goes on from. */
export interface ChainHead {
  id: string;
  seq: number;
  hash: string;
}

/** One conversation's events as stored: a file, or its rows in the database. */
export interface JournalFile {
  /** conversationKey of the conversation (a file's name without `.jsonl`). */
  key: string;
  /** Where its events are, for messages: the file's path, or the database's place for them. */
  path: string;
  /** When its last event was written. */
  mtimeMs: number;
  size: number;
}

/**
 * Where sealed audit events are kept: the JSONL files (journal.ts, one machine) or PostgreSQL
 * (pg-journal.ts, every host and the CLI). Both hold each event as the exact JSON text that was hashed,
 * so `read` gives the same lines either way and one verifier (chain.ts) checks both. Only the holder of
 * the conversation's write lock (audit-store.ts) calls `head` and `append`.
 */
export interface AuditStorage {
  /** Where this instance's events are, for messages. */
  readonly root: string;
  fileOf(conversation: ConversationId): string;
  fileOfKey(key: string): string;
  /** Names the event at `line` (1-based, in seq order) of `path`, for verify's messages. */
  locate(path: string, line: number, seq?: number, id?: string): string;
  /** The last event, or undefined when the conversation has none. */
  head(conversation: ConversationId): Promise<ChainHead | undefined>;
  /** Appends events sealed after the head, in chain order, all or none; durable when it resolves. */
  append(conversation: ConversationId, events: AuditEvent[]): Promise<void>;
  /** The events as JSON lines, each ending in a newline; undefined when there are none. */
  read(conversation: ConversationId): Promise<string | undefined>;
  readKey(key: string): Promise<string | undefined>;
  /** The last lines holding about `bytes` (for summaries). */
  tail(conversation: ConversationId, bytes: number): Promise<string>;
  list(): Promise<JournalFile[]>;
  /** When the last event under `key` was written; undefined when there is none. */
  lastWritten(key: string): Promise<number | undefined>;
  /** The conversation whose events are under `key`, from its first event (undefined: none, or foreign). */
  conversationOfKey(key: string): Promise<ConversationId | undefined>;
  remove(key: string): Promise<void>;
  close(): Promise<void>;
}
