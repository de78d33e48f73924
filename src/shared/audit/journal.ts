import { mkdir, open, readdir, readFile, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { AuditEvent } from '../../contracts/audit/events.js';
import { ConversationId, conversationKey } from '../../contracts/conversation/id.js';
import { MAX_EVENT_BYTES } from './bound.js';
import type { AuditStorage, ChainHead, JournalFile } from './storage.js';

export type { ChainHead, JournalFile } from './storage.js';

const TAIL_BYTES = 2 * MAX_EVENT_BYTES;

/**
 * The audit files of one instance: `<dir>/<instance>/<conversationKey>.jsonl`, one JSON event per line,
 * only ever appended to. The name is a pure function of the conversation id, so any process (and the
 * CLI) finds a conversation's file without an index; each event names its conversation.
 * Only the holder of the conversation's write lock (audit-store.ts) calls `head` and `append`.
 */
export class AuditJournal implements AuditStorage {
  readonly root: string;

  constructor(dir: string, instance: string) {
    this.root = path.resolve(dir, instance);
  }

  fileOf(conversation: ConversationId): string {
    return this.fileOfKey(conversationKey(conversation));
  }

  fileOfKey(key: string): string {
    return path.join(this.root, `${key}.jsonl`);
  }

  locate(file: string, line: number, seq?: number): string {
    return `${file} line ${line}${seq === undefined ? '' : ` (seq ${seq})`}`;
  }

  /**
   * The file's last event, or undefined for a new file. A partial last line (a writer died mid-write)
   * is cut off first: its event is still queued in Redis and will be written again whole.
   */
  async head(conversation: ConversationId): Promise<ChainHead | undefined> {
    const file = await open(this.fileOf(conversation), 'r+').catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw error;
    });
    if (!file) return undefined;
    try {
      const { size } = await file.stat();
      const start = Math.max(0, size - TAIL_BYTES);
      const buffer = Buffer.alloc(size - start);
      await file.read(buffer, 0, buffer.length, start);
      const end = buffer.lastIndexOf(0x0a);
      if (end === -1 && start > 0) throw new Error('its last line is longer than an event may be');
      if (end !== buffer.length - 1) await file.truncate(start + end + 1);
      if (end === -1) return undefined; // the whole file was one partial line
      const from = end === 0 ? 0 : buffer.lastIndexOf(0x0a, end - 1) + 1;
      if (from === 0 && start > 0) throw new Error('its last line is longer than an event may be');
      const last = JSON.parse(buffer.subarray(from, end).toString('utf8')) as Partial<ChainHead>;
      if (typeof last.seq !== 'number' || typeof last.hash !== 'string' || typeof last.id !== 'string') {
        throw new Error('its last line is not an audit event');
      }
      return { id: last.id, seq: last.seq, hash: last.hash };
    } catch (error) {
      throw new Error(
        `audit file ${this.fileOf(conversation)} cannot be continued (${(error as Error).message}): ` +
          'run `sandbot audit verify`; new events stay queued in Redis meanwhile',
      );
    } finally {
      await file.close();
    }
  }

  /** Appends whole lines and syncs them to disk before the queue lets go of them. */
  async append(conversation: ConversationId, events: AuditEvent[]): Promise<void> {
    if (events.length === 0) return;
    const lines = events.map((e) => JSON.stringify(e));
    await mkdir(this.root, { recursive: true, mode: 0o700 });
    const file = await open(this.fileOf(conversation), 'a', 0o600);
    try {
      await file.appendFile(`${lines.join('\n')}\n`);
      await file.datasync();
    } finally {
      await file.close();
    }
  }

  async read(conversation: ConversationId): Promise<string | undefined> {
    return this.readKey(conversationKey(conversation));
  }

  async readKey(key: string): Promise<string | undefined> {
    return readFile(this.fileOfKey(key), 'utf8').catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return undefined;
      throw error;
    });
  }

  /** The first `bytes` of a file (its first line holds the conversation id). */
  async readHead(key: string, bytes: number): Promise<string> {
    const file = await open(this.fileOfKey(key), 'r').catch(() => undefined);
    if (!file) return '';
    try {
      const buffer = Buffer.alloc(bytes);
      const { bytesRead } = await file.read(buffer, 0, bytes, 0);
      return buffer.subarray(0, bytesRead).toString('utf8');
    } finally {
      await file.close();
    }
  }

  /** The last `bytes` of a conversation's file, from a line start (for summaries). */
  async tail(conversation: ConversationId, bytes: number): Promise<string> {
    const file = await open(this.fileOf(conversation), 'r').catch(() => undefined);
    if (!file) return '';
    try {
      const { size } = await file.stat();
      const start = Math.max(0, size - bytes);
      const buffer = Buffer.alloc(size - start);
      await file.read(buffer, 0, buffer.length, start);
      const text = buffer.toString('utf8');
      return start === 0 ? text : text.slice(text.indexOf('\n') + 1);
    } finally {
      await file.close();
    }
  }

  async list(): Promise<JournalFile[]> {
    const names = await readdir(this.root).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return [] as string[];
      throw error;
    });
    const files: JournalFile[] = [];
    for (const name of names.filter((n) => n.endsWith('.jsonl')).sort()) {
      const file = path.join(this.root, name);
      const info = await stat(file).catch(() => undefined);
      if (info?.isFile()) {
        files.push({
          key: name.slice(0, -'.jsonl'.length),
          path: file,
          mtimeMs: info.mtimeMs,
          size: info.size,
        });
      }
    }
    return files;
  }

  async lastWritten(key: string): Promise<number | undefined> {
    return (await stat(this.fileOfKey(key)).catch(() => undefined))?.mtimeMs;
  }

  /** From the file's first line; undefined when it does not name a conversation whose file this is. */
  async conversationOfKey(key: string): Promise<ConversationId | undefined> {
    const text = await this.readHead(key, MAX_EVENT_BYTES + 1);
    try {
      const first = JSON.parse(text.split('\n')[0] ?? '') as { conversation?: unknown };
      const parsed = ConversationId.safeParse(first.conversation);
      return parsed.success && conversationKey(parsed.data) === key ? parsed.data : undefined;
    } catch {
      return undefined;
    }
  }

  async close(): Promise<void> {}

  async remove(key: string): Promise<void> {
    await unlink(this.fileOfKey(key)).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
    });
  }
}
