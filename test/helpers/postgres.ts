import { existsSync, readFileSync } from 'node:fs';
import { parseEnv } from 'node:util';
import pg from 'pg';
import { describe, it } from 'vitest';
import { AUDIT_TABLE } from '../../src/shared/audit/pg-schema.js';

/**
 * The tests' PostgreSQL: SANDBOT_TEST_DATABASE_URL from the environment (.ci/run exports it), else from
 * `.env`, where `bash scripts/setup-postgres.sh .env SANDBOT_TEST_DATABASE_URL` writes it. Not
 * SANDBOT_DATABASE_URL: that would move every other test's audit log into the database.
 */
export const TEST_DATABASE_URL =
  process.env.SANDBOT_TEST_DATABASE_URL ||
  (existsSync('.env') ? parseEnv(readFileSync('.env', 'utf8')).SANDBOT_TEST_DATABASE_URL : undefined) ||
  undefined;

const MISSING =
  'SANDBOT_TEST_DATABASE_URL is not set (run `bash scripts/setup-postgres.sh .env SANDBOT_TEST_DATABASE_URL`)';

/**
 * A describe block that needs PostgreSQL. Without the URL: in CI (CI=true) one failing test says so;
 * elsewhere the block is skipped, with the reason on stderr.
 */
export function describePostgres(name: string, body: (url: string) => void): void {
  const url = TEST_DATABASE_URL;
  if (url) {
    describe(name, () => body(url));
    return;
  }
  if (process.env.CI === 'true' || process.env.CI === '1') {
    describe(name, () => {
      it('has a PostgreSQL to test against', () => {
        throw new Error(`${MISSING}: CI must run the PostgreSQL tests`);
      });
    });
    return;
  }
  console.warn(`skipping "${name}": ${MISSING}`);
  describe.skip(name, () => body(''));
}

/** Deletes a test instance's audit rows. */
export async function dropInstanceRows(url: string, instance: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`DELETE FROM ${AUDIT_TABLE} WHERE instance = $1`, [instance]);
  } catch (error) {
    if ((error as { code?: string }).code !== '42P01') throw error; // no table: nothing to drop
  } finally {
    await client.end();
  }
}
