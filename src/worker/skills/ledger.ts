import { appendFile, mkdir, readFile, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { GENESIS_HASH, hashOf } from '../../shared/audit/chain.js';

/**
 * The skills ledger: what happened to the registry itself (added, scanned, approved, refused, removed),
 * which belongs to no conversation. One JSONL file in SANDBOT_SKILLS_DIR, hash-chained like the audit
 * log, so an edited or deleted entry shows (`sandbot skill log --verify`). Per-conversation events
 * (enable, disable, tool calls) go to that conversation's audit log instead.
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

const LOCK_ATTEMPTS = 100;

export class SkillLedger {
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
      const last = entries.at(-1);
      const body = {
        seq: (last?.seq ?? 0) + 1,
        time: new Date().toISOString(),
        ...input,
        prevHash: last?.hash ?? GENESIS_HASH,
      };
      const plain = JSON.parse(JSON.stringify(body)) as Record<string, unknown>;
      const entry = LedgerEntry.parse({ ...plain, hash: hashOf(plain) });
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
  let prev = GENESIS_HASH;
  let seq = 0;
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  for (const [i, line] of lines.entries()) {
    let raw: Record<string, unknown>;
    try {
      raw = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return { entries: seq, broken: `line ${i + 1}: not JSON` };
    }
    const entry = LedgerEntry.safeParse(raw);
    if (!entry.success) return { entries: seq, broken: `line ${i + 1}: not a ledger entry` };
    if (entry.data.seq !== seq + 1)
      return {
        entries: seq,
        broken: `line ${i + 1}: seq ${entry.data.seq} after ${seq} (entries missing or reordered)`,
      };
    if (entry.data.prevHash !== prev)
      return {
        entries: seq,
        broken: `line ${i + 1}: prevHash does not match (an earlier entry was changed)`,
      };
    if (hashOf(raw) !== entry.data.hash)
      return { entries: seq, broken: `line ${i + 1}: content does not match its hash (edited)` };
    prev = entry.data.hash;
    seq = entry.data.seq;
  }
  return { entries: seq };
}
