import { Redis } from 'ioredis';
import { AuditKind } from '../../contracts/audit/events.js';
import type { Config } from '../../contracts/config/schema.js';
import type { ConversationId } from '../../contracts/conversation/id.js';
import { auditKeys } from '../../contracts/redis/keys.js';
import { AuditStore } from '../../shared/audit/audit-store.js';
import { verifyChain } from '../../shared/audit/chain.js';
import { liveEvents } from '../../shared/audit/live-tail.js';
import { openAuditStorage } from '../../shared/audit/open-storage.js';
import type { AuditStorage } from '../../shared/audit/storage.js';
import { parseEvents } from '../../shared/audit/summary.js';
import { formatTimeline, timelineLine, toCsv } from '../../shared/audit/timeline.js';
import { verifyAudit } from '../../shared/audit/verify.js';
import { shownUrl } from '../cli-redis.js';
import { conversationArg } from '../conversation-arg.js';
import { loadConfigOrExit } from '../run-service.js';

/** What `sandbot audit …` does; loaded only when such a command runs (see audit.ts). */

/** A Redis connection that gives up at once when the server is not there (the CLI must not hang). */
function cliRedis(config: Config): Redis {
  const redis = new Redis(config.SANDBOT_REDIS_URL, {
    connectTimeout: 3000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    lazyConnect: true,
  });
  redis.on('error', () => undefined); // reported where a command fails
  return redis;
}

/**
 * Runs `work` with the audit's storage (PostgreSQL with SANDBOT_DATABASE_URL, else the files), closed
 * after; a storage that cannot be read (the database down) is said in one line, exit 1.
 */
async function withStorage(config: Config, work: (journal: AuditStorage) => Promise<void>) {
  const journal = openAuditStorage(config);
  try {
    await work(journal);
  } catch (error) {
    console.error(`sandbot: cannot read the audit log in ${journal.root}: ${(error as Error).message}`);
    process.exitCode = 1;
  } finally {
    await journal.close().catch(() => undefined);
  }
}

/** A conversation's events; undefined (said on stderr, exit code 1) when it has none. */
async function readEvents(journal: AuditStorage, conversation: ConversationId) {
  const text = await journal.read(conversation);
  if (text === undefined) {
    console.error(`sandbot: no audit log for ${conversation} (looked for ${journal.fileOf(conversation)})`);
    process.exitCode = 1;
    return undefined;
  }
  return { text, events: parseEvents(text) };
}

export async function auditTail(options: { conversation?: string; kind?: string; json?: boolean }) {
  const config = loadConfigOrExit();
  if (options.conversation) conversationArg(options.conversation);
  const family = options.kind?.replace(/\*$/, '');
  if (
    options.kind &&
    !AuditKind.options.some((k) => k === options.kind || (family?.endsWith('.') && k.startsWith(family)))
  ) {
    console.error(`sandbot: unknown kind "${options.kind}"; kinds: ${AuditKind.options.join(', ')}`);
    process.exit(2);
  }
  const redis = cliRedis(config);
  // connect() only says "Connection is closed."; the socket's own error (refused, unknown host) comes here.
  let socketError: Error | undefined;
  redis.on('error', (error: Error) => {
    socketError ??= error;
  });
  const stop = new AbortController();
  process.once('SIGINT', () => stop.abort());
  process.once('SIGTERM', () => stop.abort());
  try {
    await redis.connect().catch((error: Error) => {
      throw new Error(
        `Redis is not reachable at ${shownUrl(config.SANDBOT_REDIS_URL)} (${(socketError ?? error).message})`,
      );
    });
    console.error(`tailing ${auditKeys(config.SANDBOT_INSTANCE).stream} (Ctrl-C to stop)`);
    for await (const event of liveEvents(redis, config.SANDBOT_INSTANCE, options, stop.signal)) {
      console.log(options.json ? JSON.stringify(event) : `${event.conversation}  ${timelineLine(event)}`);
    }
  } catch (error) {
    console.error(`sandbot: cannot tail the audit stream: ${(error as Error).message}`);
    process.exitCode = 1;
  } finally {
    redis.disconnect();
  }
}

export async function auditShow(value: string) {
  const config = loadConfigOrExit();
  const conversation = conversationArg(value);
  await withStorage(config, async (journal) => {
    const read = await readEvents(journal, conversation);
    if (!read) return;
    process.stdout.write(formatTimeline(read.events));
    const broken = verifyChain(read.text).broken;
    if (broken) console.error(`warning: the chain is broken at line ${broken.line}: ${broken.problem}`);
  });
}

export async function auditVerify(value: string | undefined) {
  const config = loadConfigOrExit();
  const conversation = value === undefined ? undefined : conversationArg(value);
  const redis = cliRedis(config);
  await redis.connect().catch(() => undefined);
  try {
    await withStorage(config, async (journal) => {
      const store = new AuditStore(redis, config.SANDBOT_INSTANCE, journal, config.SANDBOT_AUDIT_STREAM_MAX);
      const verdicts = await verifyAudit(journal, store, conversation);
      if (verdicts.length === 0) console.log(`no audit files in ${journal.root}`);
      for (const v of verdicts) {
        const who = v.report.conversation ?? v.file;
        if (v.problem) console.log(`BROKEN  ${who}  ${v.problem}`);
        else console.log(`ok      ${who}  ${v.report.events} events${v.note ? `  (${v.note})` : ''}`);
      }
      if (verdicts.some((v) => v.problem)) process.exitCode = 1;
    });
  } finally {
    redis.disconnect();
  }
}

export async function auditExport(value: string, options: { format: string }) {
  const config = loadConfigOrExit();
  const conversation = conversationArg(value);
  if (options.format !== 'jsonl' && options.format !== 'csv') {
    console.error(`sandbot: --format must be jsonl or csv, not "${options.format}"`);
    process.exit(2);
  }
  await withStorage(config, async (journal) => {
    const read = await readEvents(journal, conversation);
    if (read) process.stdout.write(options.format === 'jsonl' ? read.text : toCsv(read.events));
  });
}
