import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll } from 'vitest';
import type { AuditEvent } from '../../src/contracts/audit/events.js';
import type { ConversationId } from '../../src/contracts/conversation/id.js';
import { createLogger } from '../../src/contracts/log/logger.js';
import { AuditLog } from '../../src/shared/audit/audit-log.js';
import { parseEvents } from '../../src/shared/audit/summary.js';
import { dropInstanceKeys, REDIS_URL } from '../../testkit/redis.js';
import { dropInstanceRows } from './postgres.js';
import { testConfig } from './stack.js';

const run = promisify(execFile);

export function tmpDir(label: string): string {
  return mkdtempSync(path.join(tmpdir(), `sandbot-audit-pg-${label}-`));
}

export const commandOf = (e: AuditEvent) =>
  String((e.data.args as { command?: string } | undefined)?.command);

/**
 * An instance whose audit is in PostgreSQL, as two hosts see it: audit logs as a worker has them
 * (audit dir A, their own Redis connections) and the CLI as its own process with an empty audit dir B.
 * Registers its cleanup (Redis keys, rows, dirs) with afterAll.
 */
export function auditPgFixture(url: string, instance: string) {
  const dirs = { worker: tmpDir('a'), cli: tmpDir('b') };
  const config = testConfig(instance, { SANDBOT_AUDIT_DIR: dirs.worker, SANDBOT_DATABASE_URL: url });
  const logger = createLogger(config);
  const connections: Redis[] = [];
  const logs: AuditLog[] = [];
  const sql = new pg.Client({ connectionString: url });
  beforeAll(() => sql.connect());
  afterAll(async () => {
    for (const log of logs) await log.stop();
    for (const redis of connections) redis.disconnect();
    await dropInstanceKeys(instance);
    await dropInstanceRows(url, instance);
    await sql.end();
    for (const dir of Object.values(dirs)) rmSync(dir, { recursive: true, force: true });
  });
  return {
    config,
    dirs,
    sql,
    /** An audit log on its own Redis connection, as another process (or host) would have. */
    openLog(): AuditLog {
      const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
      connections.push(redis);
      const log = new AuditLog(redis, config, logger);
      logs.push(log);
      return log;
    },
    eventsOf: async (log: AuditLog, conversation: ConversationId) =>
      parseEvents((await log.journal.read(conversation)) ?? ''),
    /** `sandbot …` as its own process, from the sources, on the other "host": its audit dir is empty. */
    sandbot: (args: string[], env: Record<string, string> = {}) =>
      run(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
        env: {
          ...process.env,
          SANDBOT_INSTANCE: instance,
          SANDBOT_REDIS_URL: REDIS_URL,
          SANDBOT_AUDIT_DIR: dirs.cli,
          SANDBOT_DATABASE_URL: url,
          SANDBOT_LOG_LEVEL: 'silent',
          ...env,
        },
      }).then(
        (r) => ({ code: 0, ...r }),
        (e: { code: number; stdout: string; stderr: string }) => e,
      ),
  };
}
