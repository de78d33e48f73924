import { SCHEMA_VERSIONS_SQL } from '../database/postgres.js';

/**
 * The audit's tables in PostgreSQL. Made on first use by any process (idempotent statements, under an
 * advisory lock); `sandbot_schema` records the version, so a later sandbot can migrate and an older one
 * refuses a schema it does not know.
 */

export const AUDIT_SCHEMA_VERSION = 1;
export const AUDIT_TABLE = 'sandbot_audit_events';

export function auditSchemaSql(): string[] {
  return [
    SCHEMA_VERSIONS_SQL,
    // `event` is the sealed event's JSON text exactly as hashed: the chain is checked over it. The other
    // columns repeat parts of it for lookups; `written_at` is when it was appended (for the retention).
    `CREATE TABLE IF NOT EXISTS ${AUDIT_TABLE} (
       instance text NOT NULL,
       conversation text NOT NULL,
       conversation_key text NOT NULL,
       seq bigint NOT NULL CHECK (seq > 0),
       id uuid NOT NULL,
       kind text NOT NULL,
       time timestamptz NOT NULL,
       written_at timestamptz NOT NULL DEFAULT clock_timestamp(),
       event text NOT NULL,
       PRIMARY KEY (instance, conversation, seq)
     )`,
    `CREATE INDEX IF NOT EXISTS ${AUDIT_TABLE}_key ON ${AUDIT_TABLE} (instance, conversation_key, seq)`,
    `INSERT INTO sandbot_schema (component, version) VALUES ('audit', ${AUDIT_SCHEMA_VERSION})
       ON CONFLICT (component) DO NOTHING`,
  ];
}
