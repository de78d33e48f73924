import type pg from 'pg';
import {
  createSchema,
  onceUntilFailure,
  openPool,
  SCHEMA_VERSIONS_SQL,
  shownDatabaseUrl,
} from '../../shared/database/postgres.js';

/**
 * The skills' tables in PostgreSQL (SANDBOT_DATABASE_URL), next to the audit's: made on first use by
 * any process under the same advisory lock, versioned in the same `sandbot_schema` table (component
 * `skills`), so an older sandbot refuses a newer schema. Rows belong to an instance, as audit rows do.
 */

export const SKILLS_SCHEMA_VERSION = 1;
export const SKILL_TABLES = {
  records: 'sandbot_skills',
  files: 'sandbot_skill_files',
  ledger: 'sandbot_skill_ledger',
} as const;

export function skillsSchemaSql(): string[] {
  const { records, files, ledger } = SKILL_TABLES;
  return [
    SCHEMA_VERSIONS_SQL,
    // `record` is the SkillRecord's JSON (hashes, findings, reports, approval), as record.json holds it.
    `CREATE TABLE IF NOT EXISTS ${records} (
       instance text NOT NULL,
       name text NOT NULL,
       version text NOT NULL,
       record text NOT NULL,
       updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
       PRIMARY KEY (instance, name, version)
     )`,
    // The exact bytes that were scanned: `verify` hashes these against the approval.
    `CREATE TABLE IF NOT EXISTS ${files} (
       instance text NOT NULL,
       name text NOT NULL,
       version text NOT NULL,
       path text NOT NULL,
       bytes bytea NOT NULL,
       PRIMARY KEY (instance, name, version, path),
       FOREIGN KEY (instance, name, version) REFERENCES ${records} ON DELETE CASCADE
     )`,
    // `entry` is the ledger entry's JSON text exactly as hashed: the chain is checked over it.
    `CREATE TABLE IF NOT EXISTS ${ledger} (
       instance text NOT NULL,
       seq bigint NOT NULL CHECK (seq > 0),
       written_at timestamptz NOT NULL DEFAULT clock_timestamp(),
       entry text NOT NULL,
       PRIMARY KEY (instance, seq)
     )`,
    `INSERT INTO sandbot_schema (component, version) VALUES ('skills', ${SKILLS_SCHEMA_VERSION})
       ON CONFLICT (component) DO NOTHING`,
  ];
}

/** One instance's skills in a database: a small pool, the tables made once per process. */
export class SkillDatabase {
  /** Where the skills are, for messages (the URL without its password). */
  readonly where: string;
  private readonly pool: pg.Pool;

  constructor(
    url: string,
    readonly instance: string,
  ) {
    this.where = `${shownDatabaseUrl(url)} (instance ${instance})`;
    this.pool = openPool(url, `sandbot-${instance}-skills`);
  }

  async query<R extends pg.QueryResultRow>(text: string, params: unknown[]): Promise<pg.QueryResult<R>> {
    await this.ensureSchema();
    return this.pool.query<R>(text, params).catch((error: unknown) => {
      throw this.unreachable(error);
    });
  }

  /** Runs `work` in one transaction: committed when it resolves, rolled back when it throws. */
  async transaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    await this.ensureSchema();
    const client = await this.pool.connect().catch((error: unknown) => {
      throw this.unreachable(error);
    });
    try {
      await client.query('BEGIN');
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  }

  get closed(): boolean {
    return this.pool.ending || this.pool.ended;
  }

  async close(): Promise<void> {
    if (!this.closed) await this.pool.end();
  }

  /** Once per process (again after a failure): the tables and their schema version, under a lock. */
  readonly ensureSchema = onceUntilFailure(() =>
    createSchema(
      () =>
        this.pool.connect().catch((error: unknown) => {
          throw this.unreachable(error);
        }),
      { component: 'skills', version: SKILLS_SCHEMA_VERSION, statements: skillsSchemaSql() },
      this.where,
    ),
  );

  /** A failure to connect, said with where (PostgreSQL's own errors, with a SQLSTATE, pass as they are). */
  private unreachable(error: unknown): unknown {
    const { code, message } = error as { code?: unknown; message?: string };
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return error;
    const why = message || (typeof code === 'string' ? code : String(error));
    return Object.assign(
      new Error(`cannot reach the skills database ${this.where}: ${why}`, { cause: error }),
      {
        code,
      },
    );
  }
}
