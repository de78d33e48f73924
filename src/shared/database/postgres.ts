import pg from 'pg';

/**
 * What the audit's and the skills' PostgreSQL stores share: a small pool, and each component's tables
 * made on first use under one advisory lock, versioned in `sandbot_schema` so an older sandbot refuses
 * a newer schema.
 */

/** The advisory lock held while any component's tables are made. */
export const SCHEMA_LOCK = 'SELECT pg_advisory_xact_lock(hashtext($1))';
export const SCHEMA_LOCK_NAME = 'sandbot_audit_schema';
/** The table of every component's schema version. */
export const SCHEMA_VERSIONS_SQL = `CREATE TABLE IF NOT EXISTS sandbot_schema (
       component text PRIMARY KEY,
       version integer NOT NULL
     )`;

/** The URL without its password, for messages. */
export function shownDatabaseUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    parsed.search = '';
    return parsed.toString();
  } catch {
    return '(unparsable SANDBOT_DATABASE_URL)';
  }
}

/** A small pool named after the instance and component (seen in pg_stat_activity). */
export function openPool(url: string, applicationName: string): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max: 4,
    connectionTimeoutMillis: 5000,
    idleTimeoutMillis: 10_000,
    allowExitOnIdle: true,
    application_name: applicationName,
  });
  // A pooled connection the server dropped while idle: the next query reconnects or says why.
  pool.on('error', () => undefined);
  return pool;
}

/** `make` once per process; again after a failure. */
export function onceUntilFailure(make: () => Promise<void>): () => Promise<void> {
  let ready: Promise<void> | undefined;
  return () => {
    ready ??= make().catch((error: unknown) => {
      ready = undefined;
      throw error;
    });
    return ready;
  };
}

export interface ComponentSchema {
  /** Its row in `sandbot_schema`, and its name in messages. */
  component: string;
  version: number;
  statements: string[];
}

/** Runs a component's statements in one transaction under the lock; refuses a newer recorded version. */
export async function createSchema(
  connect: () => Promise<pg.PoolClient>,
  schema: ComponentSchema,
  where: string,
): Promise<void> {
  const client = await connect();
  try {
    await client.query('BEGIN');
    // Two processes starting at once must not both run CREATE TABLE (it can fail on the catalog).
    await client.query(SCHEMA_LOCK, [SCHEMA_LOCK_NAME]);
    for (const statement of schema.statements) await client.query(statement);
    const { rows } = await client.query<{ version: number }>(
      'SELECT version FROM sandbot_schema WHERE component = $1',
      [schema.component],
    );
    await client.query('COMMIT');
    const version = rows[0]?.version ?? 0;
    if (version > schema.version) {
      throw new Error(
        `the ${schema.component} tables in ${where} are schema v${version}, newer than this sandbot's v${schema.version}: upgrade sandbot`,
      );
    }
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}
