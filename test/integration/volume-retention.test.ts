import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DockerSandboxDriver } from '../../sandbox/host/driver/docker-driver.js';
import { sandboxDriverFromConfig } from '../../sandbox/host/driver/from-config.js';
import type { AuditEvent } from '../../src/contracts/audit/events.js';
import { webConversationId } from '../../src/contracts/conversation/id.js';
import { createLogger } from '../../src/contracts/log/logger.js';
import { instanceKeys } from '../../src/contracts/redis/keys.js';
import { AuditLog } from '../../src/shared/audit/audit-log.js';
import { ConversationStore } from '../../src/shared/queue/conversation-store.js';
import { VolumeRetention } from '../../src/worker/sandboxes/volume-retention.js';
import { OutboxLedger } from '../../src/worker/turn/outbox-ledger.js';
import { cleanInstance } from '../../testkit/instance.js';
import { REDIS_URL, testInstance } from '../../testkit/redis.js';
import { testConfig } from '../helpers/stack.js';

/**
 * Retention on the real engine: a conversation whose last use is set back past
 * SANDBOT_VOLUME_RETENTION_DAYS loses its sandbox and volumes (its files are gone when it starts
 * again), a recent one keeps them, and the audit file stays, with the removal in it.
 */

const DAY = 86_400_000;
const dir = mkdtempSync(path.join(tmpdir(), 'sandbot-retention-'));
const config = testConfig(testInstance('retention'), { SANDBOT_AUDIT_DIR: dir });
const logger = createLogger(config);
const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
const old = webConversationId('retention-old');
const recent = webConversationId('retention-recent');
const busy = webConversationId('retention-busy');
let driver: DockerSandboxDriver;
let audit: AuditLog;

const marker = async (conversation: typeof old) => {
  const read = await driver.readWorkspaceFiles(conversation, ['marker.txt'], 1000);
  return read.files.map((f) => f.bytes.toString('utf8')).join('');
};

beforeAll(async () => {
  driver = sandboxDriverFromConfig(config, logger);
  audit = new AuditLog(redis, config, logger);
  for (const conversation of [old, recent, busy]) {
    const session = await driver.open(conversation);
    await session.close();
    await driver.putWorkspaceFile(conversation, 'marker.txt', Buffer.from(`kept ${conversation}`));
    await audit.record({ conversation, actor: 'worker:test', kind: 'sandbox.create', data: {} });
  }
}, 180_000);

afterAll(async () => {
  await audit.stop();
  await cleanInstance(config);
  redis.disconnect();
});

describe('volume retention', () => {
  it('removes the sandbox and volumes of a conversation unused past the retention, and keeps its audit', async () => {
    const now = Date.now();
    const key = instanceKeys(config.SANDBOT_INSTANCE).lastUsed;
    await redis.zadd(key, now - 31 * DAY, old, now - 2 * DAY, recent, now - 40 * DAY, busy);
    // A turn runs in `busy` (its lease is held): it is left alone.
    const store = new ConversationStore(redis, config.SANDBOT_INSTANCE);
    expect(await store.acquire(busy, 'a-running-turn', 60_000)).toBe(true);
    const retention = new VolumeRetention(
      {
        driver,
        store,
        connection: redis,
        ledger: new OutboxLedger(redis, config.SANDBOT_INSTANCE),
        logger,
        audit,
      },
      { instance: config.SANDBOT_INSTANCE, retentionDays: 30, actor: 'worker:test' },
    );

    expect(await retention.sweep(now)).toEqual([old]);

    const left = (await driver.list()).map((s) => s.conversation);
    expect(left).not.toContain(old);
    expect(left).toEqual(expect.arrayContaining([recent, busy]));
    expect(await redis.zscore(key, old)).toBeNull();
    expect(await marker(recent)).toContain(`kept ${recent}`);
    expect(await marker(busy)).toContain(`kept ${busy}`);
    // Started again, it is a fresh sandbox: the old files went with the volumes.
    const session = await driver.open(old);
    await session.close();
    expect(await marker(old)).not.toContain(`kept ${old}`);

    await audit.settle();
    const events = readFileSync(audit.journal.fileOf(old), 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as AuditEvent);
    expect(events.map((e) => e.kind)).toContain('sandbox.create');
    expect(events.find((e) => e.kind === 'sandbox.remove')?.data).toMatchObject({
      reason: 'retention',
      retentionDays: 30,
      existed: true,
    });
    // The lease the sweep held is given back.
    expect(await store.leaseHolder(old)).toBeNull();
  }, 180_000);

  it('keeps everything at 0 days', async () => {
    const retention = new VolumeRetention(
      {
        driver,
        store: new ConversationStore(redis, config.SANDBOT_INSTANCE),
        connection: redis,
        ledger: new OutboxLedger(redis, config.SANDBOT_INSTANCE),
        logger,
      },
      { instance: config.SANDBOT_INSTANCE, retentionDays: 0, actor: 'worker:test' },
    );
    expect(await retention.sweep(Date.now() + 10_000 * DAY)).toEqual([]);
    expect((await driver.list()).map((s) => s.conversation)).toContain(recent);
  });
});
