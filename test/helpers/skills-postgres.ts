import pg from 'pg';
import { SKILL_TABLES } from '../../src/worker/skills/pg-schema.js';

/** Deletes a test instance's skills rows (records, files, ledger). */
export async function dropSkillRows(url: string, instance: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    for (const table of [SKILL_TABLES.files, SKILL_TABLES.records, SKILL_TABLES.ledger])
      await client.query(`DELETE FROM ${table} WHERE instance = $1`, [instance]);
  } catch (error) {
    if ((error as { code?: string }).code !== '42P01') throw error; // no table: nothing to drop
  } finally {
    await client.end();
  }
}
