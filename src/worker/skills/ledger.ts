import { appendFile, mkdir, readFile, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { GENESIS_HASH, hashOf } from '../../shared/audit/chain.js';

/**
 * The skills ledger: what happened to the registry itself (added, scanned, approved, refused, removed),
 * which belongs to no conversation. Hash-chained like the audit log, so an edited or deleted entry shows
 * (`sandbot skill log --verify`): one JSONL file in SANDBOT_SKILLS_DIR (FileSkillLedger), or rows in
 * PostgreSQL holding each entry's JSON text as hashed (pg-ledger.ts). Per-conversation events (enable,
 * disable, tool calls) go to that conversation's audit log instead.
 */

export const LedgerEntry = z.object({
  seq: z.number().int().positive(),
  time: z.iso.datetime(),
  /** admin:<who> for the CLI. */
  actor: z.string().max(300),
  action: z.enum(['add', 'scan', 'approve', 'refuse', 'remove']),
  /** "name@version" (or the source path when no manifest could be read). */
  skill: z.string().max(500),
  data: z.record(z.string(), z.unknown()),
  prevHash: z.string(),
  hash: z.string(),
});
export type LedgerEntry = z.infer<typeof LedgerEntry>;
export type LedgerInput = Pick<LedgerEntry, 'actor' | 'action' | 'skill' | 'data'>;

export interface SkillLedger {
  /** Where the entries are, for messages. */
  readonly path: string;
  /** Appends one entry after the last, in order, even with several writers. */
  append(input: LedgerInput): Promise<LedgerEntry>;
  /** The entries in order (lines that are not entries are left out). */
  read(): Promise<LedgerEntry[]>;
  /** Checks the chain; the first broken entry in words, or undefined when it is whole. */
  verify(): Promise<{ entries: number; broken?: string }>;
}

/** The entry that follows `last` (undefined: the first), sealed with its hash. */
export function nextLedgerEntry(
  last: Pick<LedgerEntry, 'seq' | 'hash'> | undefined,
  input: LedgerInput,
): LedgerEntry {
  const body = {
    seq: (last?.seq ?? 0) + 1,
    time: new Date().toISOString(),
    ...input,
    prevHash: last?.hash ?? GENESIS_HASH,
  };
  // Through JSON first, so the hash is of exactly what is stored.
  const plain = JSON.parse(JSON.stringify(body)) as Record<string, unknown>;
  return LedgerEntry.parse({ ...plain, hash: hashOf(plain) });
}

const LOCK_ATTEMPTS = 100;

export class FileSkillLedger implements SkillLedger {
  readonly path: string;
  constructor(private readonly root: string) {
    this.path = join(root, 'ledger.jsonl');
  }

  /** Appends one entry under a lock directory (several CLI runs may write at once). */
  async append(input: LedgerInput): Promise<LedgerEntry> {
    await mkdir(this.root, { recursive: true });
    const lock = `${this.path}.lock`;
    for (let attempt = 0; ; attempt++) {
      try {
        await mkdir(lock);
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || attempt >= LOCK_ATTEMPTS) {
          throw new Error(
            `the skills ledger is locked (${lock}); if no sandbot command is running, remove that folder`,
          );
        }
        await sleep(50);
      }
    }
    try {
      const entries = await this.read();
      const entry = nextLedgerEntry(entries.at(-1), input);
      await appendFile(this.path, `${JSON.stringify(entry)}\n`, { mode: 0o644 });
      return entry;
    } finally {
      await rmdir(lock).catch(() => undefined);
    }
  }

  async read(): Promise<LedgerEntry[]> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    return text
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => LedgerEntry.safeParse(JSON.parse(line)))
      .filter((r) => r.success)
      .map((r) => r.data);
  }

  /** Checks the chain; the first broken line in words, or undefined when it is whole. */
  async verify(): Promise<{ entries: number; broken?: string }> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { entries: 0 };
      throw error;
    }
    return verifyLedgerText(text);
  }
}

export function verifyLedgerText(text: string): { entries: number; broken?: string } {
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  return verifyLedgerLines(lines, (i) => `line ${i + 1}`);
}

/**
 * Checks a ledger's entries (JSON texts) in order; `where(i)` names the i-th (0-based) in messages: its
 * line in the file, its row in the database.
 */
export function verifyLedgerLines(
  lines: readonly string[],
  where: (index: number) => string,
): { entries: number; broken?: string } {
  let prev = GENESIS_HASH;
  let seq = 0;
  for (const [i, line] of lines.entries()) {
    let raw: Record<string, unknown>;
    try {
      raw = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return { entries: seq, broken: `${where(i)}: not JSON` };
    }
    const entry = LedgerEntry.safeParse(raw);
    if (!entry.success) return { entries: seq, broken: `${where(i)}: not a ledger entry` };
    if (entry.data.seq !== seq + 1)
      return {
        entries: seq,
        broken: `${where(i)}: seq ${entry.data.seq} after ${seq} (entries missing or reordered)`,
      };
    if (entry.data.prevHash !== prev)
      return {
        entries: seq,
        broken: `${where(i)}: prevHash does not match (an earlier entry was changed)`,
      };
    if (hashOf(raw) !== entry.data.hash)
      return { entries: seq, broken: `${where(i)}: content does not match its hash (edited)` };
    prev = entry.data.hash;
    seq = entry.data.seq;
  }
  return { entries: seq };
}
