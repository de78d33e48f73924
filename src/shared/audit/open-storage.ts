import type { Config } from '../../contracts/config/schema.js';
import { AuditJournal } from './journal.js';
import { PgAuditJournal } from './pg-journal.js';
import type { AuditStorage } from './storage.js';

export type StorageSettings = Pick<Config, 'SANDBOT_AUDIT_DIR' | 'SANDBOT_INSTANCE' | 'SANDBOT_DATABASE_URL'>;

/** PostgreSQL when SANDBOT_DATABASE_URL is set, else the files under SANDBOT_AUDIT_DIR. */
export function openAuditStorage(settings: StorageSettings): AuditStorage {
  return settings.SANDBOT_DATABASE_URL
    ? new PgAuditJournal(settings.SANDBOT_DATABASE_URL, settings.SANDBOT_INSTANCE)
    : new AuditJournal(settings.SANDBOT_AUDIT_DIR, settings.SANDBOT_INSTANCE);
}
