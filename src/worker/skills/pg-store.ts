import { checkLimits, SKILL_LIMITS, type SkillFile } from './hashing.js';
import { compareVersions } from './manifest.js';
import { PgSkillLedger } from './pg-ledger.js';
import { SKILL_TABLES, SkillDatabase } from './pg-schema.js';
import {
  pickFrom,
  SkillRecord,
  type SkillStore,
  type Verification,
  validRef,
  verifyStored,
} from './store.js';

const { records: RECORDS, files: FILES } = SKILL_TABLES;

/**
 * Skills in PostgreSQL (SANDBOT_DATABASE_URL): each name@version's record as JSON and its files' exact
 * bytes in rows, the ledger beside them, so the CLI on one host and workers on others see the same
 * skills without a shared folder. Same limits as the folder (SKILL_LIMITS), checked when staged and
 * again when read, and the same approval pinning: `verify` hashes the bytes the rows hold now.
 */
export class PgSkillStore implements SkillStore {
  readonly root: string;
  readonly ledger: PgSkillLedger;
  private readonly db: SkillDatabase;

  constructor(url: string, instance: string) {
    this.db = new SkillDatabase(url, instance);
    this.root = `${this.db.where} ${RECORDS}`;
    this.ledger = new PgSkillLedger(this.db);
  }

  private get instance(): string {
    return this.db.instance;
  }

  /** Record and files in one transaction: the old name@version is replaced whole or not at all. */
  async stage(record: SkillRecord, files: readonly SkillFile[]): Promise<void> {
    const over = checkLimits(files);
    if (over) throw new Error(over);
    const bad = files.find((f) => !safePath(f.path));
    if (bad) throw new Error(`${bad.path}: not a relative path inside the skill`);
    const json = JSON.stringify(SkillRecord.parse(record));
    const key = [this.instance, record.name, record.version];
    await this.db.transaction(async (client) => {
      await client.query(
        `INSERT INTO ${RECORDS} (instance, name, version, record) VALUES ($1, $2, $3, $4)
         ON CONFLICT (instance, name, version) DO UPDATE SET record = EXCLUDED.record, updated_at = clock_timestamp()`,
        [...key, json],
      );
      await client.query(`DELETE FROM ${FILES} WHERE instance = $1 AND name = $2 AND version = $3`, key);
      for (let at = 0; at < files.length; at += 100) {
        const batch = files.slice(at, at + 100);
        const params: unknown[] = [];
        const values = batch.map((file) => {
          params.push(...key, file.path, file.bytes);
          const n = params.length;
          return `($${n - 4}, $${n - 3}, $${n - 2}, $${n - 1}, $${n})`;
        });
        await client.query(
          `INSERT INTO ${FILES} (instance, name, version, path, bytes) VALUES ${values.join(', ')}`,
          params,
        );
      }
    });
  }

  async save(record: SkillRecord): Promise<void> {
    const json = JSON.stringify(SkillRecord.parse(record));
    const { rowCount } = await this.db.query(
      `UPDATE ${RECORDS} SET record = $4, updated_at = clock_timestamp()
       WHERE instance = $1 AND name = $2 AND version = $3`,
      [this.instance, record.name, record.version, json],
    );
    if (!rowCount) throw new Error(`${record.name}@${record.version} is not in ${this.root}`);
  }

  async get(name: string, version: string): Promise<SkillRecord | undefined> {
    if (!validRef(name, version)) return undefined;
    const { rows } = await this.db.query<{ record: string }>(
      `SELECT record FROM ${RECORDS} WHERE instance = $1 AND name = $2 AND version = $3`,
      [this.instance, name, version],
    );
    const row = rows[0];
    return row ? parseRecord(name, version, row.record) : undefined;
  }

  async list(name?: string): Promise<SkillRecord[]> {
    const { rows } = await this.db.query<{ name: string; version: string; record: string }>(
      `SELECT name, version, record FROM ${RECORDS} WHERE instance = $1 AND ($2::text IS NULL OR name = $2)`,
      [this.instance, name ?? null],
    );
    rows.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : compareVersions(b.version, a.version)));
    const records: SkillRecord[] = [];
    for (const row of rows) {
      if (!validRef(row.name, row.version)) continue;
      try {
        records.push(parseRecord(row.name, row.version, row.record));
      } catch {
        // As in a folder: a damaged record is left out of lists, and named when asked for.
      }
    }
    return records;
  }

  pick(name: string, version?: string): Promise<SkillRecord | undefined> {
    return pickFrom(this, name, version);
  }

  async remove(name: string, version: string): Promise<boolean> {
    if (!validRef(name, version)) return false;
    const { rowCount } = await this.db.query(
      `DELETE FROM ${RECORDS} WHERE instance = $1 AND name = $2 AND version = $3`,
      [this.instance, name, version],
    );
    return (rowCount ?? 0) > 0;
  }

  /**
   * The rows' bytes, refused (in words) past SKILL_LIMITS or with a path that could leave the skill's
   * folder once mounted: rows are checked as strictly as a folder's files are.
   */
  async readFiles(record: Pick<SkillRecord, 'name' | 'version'>): Promise<SkillFile[]> {
    const { maxFiles, maxFileBytes, maxTotalBytes } = SKILL_LIMITS;
    // Sizes first, in the same statement: bytes past the limits are never fetched.
    const { rows } = await this.db.query<{ path: string; size: number; total: string; bytes: Buffer | null }>(
      `SELECT path, size, total, CASE WHEN total <= $4 AND size <= $5 THEN bytes END AS bytes FROM (
         SELECT path, bytes, octet_length(bytes) AS size, sum(octet_length(bytes)) OVER () AS total
         FROM ${FILES} WHERE instance = $1 AND name = $2 AND version = $3
       ) AS f ORDER BY path COLLATE "C" LIMIT $6`,
      [this.instance, record.name, record.version, maxTotalBytes, maxFileBytes, maxFiles + 1],
    );
    if (rows.length > maxFiles) throw new Error(`more than ${maxFiles} files`);
    return rows.map((row) => {
      if (!safePath(row.path)) throw new Error(`${row.path}: not a relative path inside the skill`);
      if (row.bytes === null) {
        throw new Error(
          `${row.path}: the skill is over its size limit (${maxFileBytes} bytes a file, ${maxTotalBytes} in all)`,
        );
      }
      return { path: row.path, bytes: row.bytes };
    });
  }

  verify(record: SkillRecord, expected?: string): Promise<Verification> {
    return verifyStored(this, record, expected);
  }

  /** For `sandbot doctor`: the tables are there (made if not); how many skills and ledger entries. */
  async count(): Promise<{ skills: number; entries: number }> {
    const { rows } = await this.db.query<{ skills: string; entries: string }>(
      `SELECT (SELECT count(*) FROM ${RECORDS} WHERE instance = $1) AS skills,
              (SELECT count(*) FROM ${SKILL_TABLES.ledger} WHERE instance = $1) AS entries`,
      [this.instance],
    );
    return { skills: Number(rows[0]?.skills ?? 0), entries: Number(rows[0]?.entries ?? 0) };
  }

  get closed(): boolean {
    return this.db.closed;
  }

  close(): Promise<void> {
    return this.db.close();
  }
}

function parseRecord(name: string, version: string, text: string): SkillRecord {
  let parsed: ReturnType<typeof SkillRecord.safeParse> | undefined;
  try {
    parsed = SkillRecord.safeParse(JSON.parse(text));
  } catch {
    // named below
  }
  const issue = parsed?.success
    ? parsed.data.name === name && parsed.data.version === version
      ? undefined
      : `it says it is ${parsed.data.name}@${parsed.data.version}`
    : (parsed?.error.issues[0]?.message ?? 'not JSON');
  if (issue || !parsed?.success)
    throw new Error(
      `${name}@${version}: its record in the database is damaged (${issue}); add the skill again`,
    );
  return parsed.data;
}

/** A posix path relative to the skill's folder: no empty, "." or ".." parts (as a folder's files have). */
export function safePath(path: string): boolean {
  if (path.includes('\0')) return false;
  return path.split('/').every((part) => part !== '' && part !== '.' && part !== '..');
}
