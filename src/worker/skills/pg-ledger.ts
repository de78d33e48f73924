import { GENESIS_HASH } from '../../shared/audit/chain.js';
import {
  LedgerEntry,
  type LedgerInput,
  nextLedgerEntry,
  type SkillLedger,
  verifyLedgerLines,
} from './ledger.js';
import { SKILL_TABLES, type SkillDatabase } from './pg-schema.js';

const TABLE = SKILL_TABLES.ledger;

/**
 * The skills ledger in PostgreSQL: one row per entry holding its JSON text exactly as hashed, so the
 * file ledger's verifier checks it and an edited or deleted row is named by its seq. Appends take a
 * per-instance transaction lock, so writers on any host chain one after another; (instance, seq) is the
 * primary key as a backstop.
 */
export class PgSkillLedger implements SkillLedger {
  readonly path: string;

  constructor(private readonly db: SkillDatabase) {
    this.path = `${db.where} ${TABLE}`;
  }

  append(input: LedgerInput): Promise<LedgerEntry> {
    return this.db.transaction(async (client) => {
      await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`${TABLE}:${this.db.instance}`]);
      const { rows } = await client.query<{ seq: string; entry: string }>(
        `SELECT seq, entry FROM ${TABLE} WHERE instance = $1 ORDER BY seq DESC LIMIT 1`,
        [this.db.instance],
      );
      const entry = nextLedgerEntry(lastOf(rows[0]), input);
      await client.query(`INSERT INTO ${TABLE} (instance, seq, entry) VALUES ($1, $2, $3)`, [
        this.db.instance,
        entry.seq,
        JSON.stringify(entry),
      ]);
      return entry;
    });
  }

  async read(): Promise<LedgerEntry[]> {
    return (await this.rows())
      .map((row) => LedgerEntry.safeParse(parseJson(row.entry)))
      .filter((r) => r.success)
      .map((r) => r.data);
  }

  async verify(): Promise<{ entries: number; broken?: string }> {
    const rows = await this.rows();
    return verifyLedgerLines(
      rows.map((r) => r.entry),
      (i) => `row seq ${rows[i]?.seq}`,
    );
  }

  private async rows(): Promise<{ seq: string; entry: string }[]> {
    const { rows } = await this.db.query<{ seq: string; entry: string }>(
      `SELECT seq, entry FROM ${TABLE} WHERE instance = $1 ORDER BY seq`,
      [this.db.instance],
    );
    return rows;
  }
}

/**
 * Where the chain goes on from. A damaged last row still gives its seq (the key must stay unique) and
 * whatever hash it holds: the admin's action is recorded, and `skill log --verify` names that row.
 */
function lastOf(
  row: { seq: string; entry: string } | undefined,
): Pick<LedgerEntry, 'seq' | 'hash'> | undefined {
  if (!row) return undefined;
  const parsed = parseJson(row.entry) as { hash?: unknown } | undefined;
  return { seq: Number(row.seq), hash: typeof parsed?.hash === 'string' ? parsed.hash : GENESIS_HASH };
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
