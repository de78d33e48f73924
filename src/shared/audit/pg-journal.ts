import type pg from 'pg';
import type { AuditEvent } from '../../contracts/audit/events.js';
import { ConversationId, conversationKey } from '../../contracts/conversation/id.js';
import { createSchema, onceUntilFailure, openPool, shownDatabaseUrl } from '../database/postgres.js';
import { AUDIT_SCHEMA_VERSION, AUDIT_TABLE, auditSchemaSql } from './pg-schema.js';
import type { AuditStorage, ChainHead, JournalFile } from './storage.js';

/** A unique violation: another writer already appended an event with that seq. */
const UNIQUE_VIOLATION = '23505';

/** Raised when the database already holds a seq this batch wanted: the batch was not written. */
export class AuditConflictError extends Error {}

/** Where the CLI's doctor found it first. */
export { shownDatabaseUrl };

/**
 * The audit events of one instance in PostgreSQL (SANDBOT_DATABASE_URL), where every host and the CLI
 * read them. Each row keeps the event's JSON text exactly as it was hashed, so `read` gives the lines a
 * file would hold and the same verifier checks them; (instance, conversation, seq) is the primary key, so
 * two writers can never both append seq N (the Redis lock already keeps them apart; this is the backstop,
 * and a conflict fails the whole batch, which stays queued in Redis). The table is made on first use.
 */
export class PgAuditJournal implements AuditStorage {
  readonly root: string;
  private readonly pool: pg.Pool;

  constructor(
    url: string,
    private readonly instance: string,
  ) {
    this.root = `${shownDatabaseUrl(url)} ${AUDIT_TABLE} (instance ${instance})`;
    this.pool = openPool(url, `sandbot-${instance}-audit`);
  }

  fileOf(conversation: ConversationId): string {
    return this.fileOfKey(conversationKey(conversation));
  }

  fileOfKey(key: string): string {
    return `${this.root} conversation ${key}`;
  }

  locate(where: string, line: number, seq?: number, id?: string): string {
    return seq === undefined ? `${where} event ${line}` : `${where} seq ${seq}${id ? ` (event ${id})` : ''}`;
  }

  async head(conversation: ConversationId): Promise<ChainHead | undefined> {
    const { rows } = await this.query<{ event: string }>(
      `SELECT event FROM ${AUDIT_TABLE} WHERE instance = $1 AND conversation = $2 ORDER BY seq DESC LIMIT 1`,
      [this.instance, conversation],
    );
    const row = rows[0];
    if (!row) return undefined;
    let last: Partial<ChainHead> = {};
    try {
      last = JSON.parse(row.event) as Partial<ChainHead>;
    } catch {
      // named below
    }
    if (typeof last.seq !== 'number' || typeof last.hash !== 'string' || typeof last.id !== 'string') {
      throw new Error(
        `the audit of ${conversation} in ${this.root} cannot be continued (its last event is not an audit event): ` +
          'run `sandbot audit verify`; new events stay queued in Redis meanwhile',
      );
    }
    return { id: last.id, seq: last.seq, hash: last.hash };
  }

  /** One INSERT for the batch: one transaction, so it is written whole or not at all. */
  async append(conversation: ConversationId, events: AuditEvent[]): Promise<void> {
    if (events.length === 0) return;
    const key = conversationKey(conversation);
    const params: unknown[] = [];
    const values = events.map((event) => {
      const at = params.length;
      params.push(this.instance, conversation, key, event.seq, event.id, event.kind, event.time);
      params.push(JSON.stringify(event));
      return `(${Array.from({ length: 8 }, (_, i) => `$${at + i + 1}`).join(', ')})`;
    });
    try {
      await this.query(
        `INSERT INTO ${AUDIT_TABLE} (instance, conversation, conversation_key, seq, id, kind, time, event) VALUES ${values.join(', ')}`,
        params,
      );
    } catch (error) {
      if ((error as { code?: string }).code !== UNIQUE_VIOLATION) throw error;
      // The detail names the key: "Key (instance, conversation, seq)=(…, …, 7) already exists."
      const taken = /, (\d+)\) already exists/.exec((error as { detail?: string }).detail ?? '')?.[1];
      throw new AuditConflictError(
        `audit events ${events[0]?.seq}–${events.at(-1)?.seq} of ${conversation} not written: ` +
          `seq ${taken ?? '?'} is already in the database (another writer appended it); they stay queued`,
      );
    }
  }

  read(conversation: ConversationId): Promise<string | undefined> {
    return this.lines('conversation = $2', conversation);
  }

  readKey(key: string): Promise<string | undefined> {
    return this.lines('conversation_key = $2', key);
  }

  async tail(conversation: ConversationId, bytes: number): Promise<string> {
    const { rows } = await this.query<{ event: string }>(
      `SELECT event FROM (
         SELECT event, seq, sum(octet_length(event) + 1) OVER (ORDER BY seq DESC) AS upto
         FROM ${AUDIT_TABLE} WHERE instance = $1 AND conversation = $2
       ) AS recent WHERE upto <= $3 ORDER BY seq`,
      [this.instance, conversation, bytes],
    );
    return rows.map((r) => `${r.event}\n`).join('');
  }

  async list(): Promise<JournalFile[]> {
    const { rows } = await this.query<{ key: string; written: string; size: string }>(
      `SELECT conversation_key AS key, (extract(epoch FROM max(written_at)) * 1000)::bigint AS written,
              sum(octet_length(event) + 1) AS size
       FROM ${AUDIT_TABLE} WHERE instance = $1 GROUP BY conversation_key ORDER BY conversation_key`,
      [this.instance],
    );
    return rows.map((r) => ({
      key: r.key,
      path: this.fileOfKey(r.key),
      mtimeMs: Number(r.written),
      size: Number(r.size),
    }));
  }

  async lastWritten(key: string): Promise<number | undefined> {
    const { rows } = await this.query<{ written: string | null }>(
      `SELECT (extract(epoch FROM max(written_at)) * 1000)::bigint AS written
       FROM ${AUDIT_TABLE} WHERE instance = $1 AND conversation_key = $2`,
      [this.instance, key],
    );
    const written = rows[0]?.written;
    return written === null || written === undefined ? undefined : Number(written);
  }

  async conversationOfKey(key: string): Promise<ConversationId | undefined> {
    const { rows } = await this.query<{ event: string }>(
      `SELECT event FROM ${AUDIT_TABLE} WHERE instance = $1 AND conversation_key = $2 ORDER BY seq LIMIT 1`,
      [this.instance, key],
    );
    try {
      const first = JSON.parse(rows[0]?.event ?? '') as { conversation?: unknown };
      const parsed = ConversationId.safeParse(first.conversation);
      return parsed.success && conversationKey(parsed.data) === key ? parsed.data : undefined;
    } catch {
      return undefined;
    }
  }

  async remove(key: string): Promise<void> {
    await this.query(`DELETE FROM ${AUDIT_TABLE} WHERE instance = $1 AND conversation_key = $2`, [
      this.instance,
      key,
    ]);
  }

  /**
   * For `sandbot doctor`: the database answers, the table is there (made if not) and this role may
   * append to it. The probe row is rolled back: nothing stays.
   */
  async probe(): Promise<string> {
    await this.ensureSchema();
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      const { rows } = await client.query<{ server_version: string }>('SHOW server_version');
      await client.query(
        `INSERT INTO ${AUDIT_TABLE} (instance, conversation, conversation_key, seq, id, kind, time, event)
         VALUES ($1, 'web:doctor', 'doctor', 1, gen_random_uuid(), 'probe', now(), '{}')`,
        [`${this.instance}-doctor-probe`],
      );
      return `PostgreSQL ${rows[0]?.server_version.split(' ')[0] ?? '?'} at ${this.root}: can append (schema v${AUDIT_SCHEMA_VERSION})`;
    } finally {
      await client.query('ROLLBACK').catch(() => undefined);
      client.release();
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
  }

  private async lines(where: string, value: string): Promise<string | undefined> {
    const { rows } = await this.query<{ event: string }>(
      `SELECT event FROM ${AUDIT_TABLE} WHERE instance = $1 AND ${where} ORDER BY seq`,
      [this.instance, value],
    );
    return rows.length === 0 ? undefined : rows.map((r) => `${r.event}\n`).join('');
  }

  private async query<R extends pg.QueryResultRow>(text: string, params: unknown[]) {
    await this.ensureSchema();
    return this.pool.query<R>(text, params);
  }

  /** Once per process (again after a failure): the table and its schema version, under a lock. */
  private readonly ensureSchema = onceUntilFailure(() =>
    createSchema(
      () => this.pool.connect(),
      { component: 'audit', version: AUDIT_SCHEMA_VERSION, statements: auditSchemaSql() },
      this.root,
    ),
  );
}
