import type { DoctorCheck } from '../../contracts/doctor/check.js';
import { PgAuditJournal, shownDatabaseUrl } from '../../shared/audit/pg-journal.js';

export const DATABASE_CHECK = 'Audit database';

/** PostgreSQL error codes the fix depends on. */
const WRONG_PASSWORD = '28P01';
const NO_SUCH_DATABASE = '3D000';
const NOT_ALLOWED = '42501';

/**
 * `sandbot doctor` with SANDBOT_DATABASE_URL: the database answers, the audit table is there (made if
 * not) and this role may append to it (a probe row, rolled back). Never says the password.
 */
export async function checkAuditDatabase(url: string, instance: string): Promise<DoctorCheck> {
  const journal = new PgAuditJournal(url, instance);
  try {
    return { name: DATABASE_CHECK, ok: true, detail: await journal.probe() };
  } catch (error) {
    const code = (error as { code?: string }).code;
    const why = (error as Error).message.replace(/\s+/g, ' ').trim();
    return {
      name: DATABASE_CHECK,
      ok: false,
      detail: `cannot use the audit database at ${shownDatabaseUrl(url)}: ${why}`,
      fix: fixFor(code),
    };
  } finally {
    await journal.close().catch(() => undefined);
  }
}

function fixFor(code: string | undefined): string {
  if (code === WRONG_PASSWORD) return 'put the role’s password in SANDBOT_DATABASE_URL';
  if (code === NO_SUCH_DATABASE)
    return 'create the database (`bash scripts/setup-postgres.sh` does), or fix its name';
  if (code === NOT_ALLOWED) {
    return 'let the role create and append to sandbot_audit_events (own the database, or GRANT CREATE, SELECT, INSERT, DELETE)';
  }
  return 'start PostgreSQL (`bash scripts/setup-postgres.sh` installs and starts one), or set SANDBOT_DATABASE_URL to a reachable server; unset it to keep the audit in files';
}
