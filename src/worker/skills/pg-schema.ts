import pg from 'pg';
import { shownDatabaseUrl } from '../../shared/audit/pg-journal.js';
import { SCHEMA_LOCK, SCHEMA_LOCK_NAME } from '../../shared/audit/pg-schema.js';

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
    `CREATE TABLE IF NOT EXISTS sandbot_schema (
       component text PRIMARY KEY,
       version integer NOT NULL
     )`,
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
  private ready: Promise<void> | undefined;

  constructor(
    url: string,
    readonly instance: string,
  ) {
    this.where = `${shownDatabaseUrl(url)} (instance ${instance})`;
    this.pool = new pg.Pool({
      connectionString: url,
      max: 4,
      connectionTimeoutMillis: 5000,
      idleTimeoutMillis: 10_000,
      allowExitOnIdle: true,
      application_name: `sandbot-${instance}-skills`,
    });
    // A pooled connection the server dropped while idle: the next query reconnects or says why.
    this.pool.on('error', () => undefined);
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
  ensureSchema(): Promise<void> {
    this.ready ??= this.createSchema().catch((error: unknown) => {
      this.ready = undefined;
      throw error;
    });
    return this.ready;
  }

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

  private async createSchema(): Promise<void> {
    const client = await this.pool.connect().catch((error: unknown) => {
      throw this.unreachable(error);
    });
    try {
      await client.query('BEGIN');
      // The audit's lock: two processes starting at once must not both run CREATE TABLE.
      await client.query(SCHEMA_LOCK, [SCHEMA_LOCK_NAME]);
      for (const statement of skillsSchemaSql()) await client.query(statement);
      const { rows } = await client.query<{ version: number }>(
        `SELECT version FROM sandbot_schema WHERE component = 'skills'`,
      );
      await client.query('COMMIT');
      const version = rows[0]?.version ?? 0;
      if (version > SKILLS_SCHEMA_VERSION) {
        throw new Error(
          `the skills tables in ${this.where} are schema v${version}, newer than this sandbot's v${SKILLS_SCHEMA_VERSION}: upgrade sandbot`,
        );
      }
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  }
}
