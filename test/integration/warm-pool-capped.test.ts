import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { quotaUsage } from '../../sandbox/host/driver/disk-quota.js';
import { sandboxNames } from '../../sandbox/host/driver/docker-spec.js';
import { sandboxDriverFromConfig } from '../../sandbox/host/driver/from-config.js';
import { webConversationId } from '../../src/contracts/conversation/id.js';
import { conversationKeys } from '../../src/contracts/redis/keys.js';
import { AuditJournal } from '../../src/shared/audit/journal.js';
import { parseEvents } from '../../src/shared/audit/summary.js';
import { canaryFileContent } from '../../src/worker/turn/canary.js';
import { type FakeOllama, startFakeOllama } from '../../testkit/fakes/fake-ollama.js';
import { cleanInstance } from '../../testkit/instance.js';
import { REDIS_URL, testInstance } from '../../testkit/redis.js';
import { replyText, shellModel } from '../helpers/shell-model.js';
import { startStack, testConfig } from '../helpers/stack.js';

/**
 * The warm pool with the default size caps (SANDBOX_WORKSPACE_MB) on the real engine: a pooled
 * sandbox's capped images become the claiming conversation's (a link in the disk folder), and every
 * later lookup by the conversation (reopen, recreate, rm, rm --wipe, disk usage) finds them.
 */

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
let ollama: FakeOllama;
let redis: Redis;

beforeAll(async () => {
  ollama = await startFakeOllama({ models: ['qwen2.5:7b'], script: shellModel });
  redis = new Redis(REDIS_URL);
});

afterAll(async () => {
  redis?.disconnect();
  await ollama?.close();
});

describe('a warm pool with size-capped disks', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sandbot-pool-capped-audit-'));
  const config = testConfig(testInstance('poolcap'), {
    SANDBOX_WARM_POOL: '1',
    SANDBOX_WORKSPACE_MB: '256',
    SANDBOT_AUDIT_DIR: dir,
  });
  const root = config.SANDBOX_DISK_DIR;
  const driver = sandboxDriverFromConfig(config);
  const journal = new AuditJournal(dir, config.SANDBOT_INSTANCE);
  const a = webConversationId('pcap-a');
  const b = webConversationId('pcap-b');
  const linkOf = (conversation: typeof a) => {
    const file = path.join(
      root,
      `${sandboxNames(config.SANDBOT_INSTANCE, conversation).workspaceVolume}.link`,
    );
    return existsSync(file) ? readFileSync(file, 'utf8') : undefined;
  };
  let stack: Awaited<ReturnType<typeof startStack>> | undefined;

  beforeAll(async () => {
    Object.assign(config, { OLLAMA_HOST: ollama.url });
    stack = await startStack(config);
  });

  afterAll(async () => {
    await stack?.stop();
    await driver.remove(a, { wipe: true }).catch(() => undefined);
    await driver.remove(b, { wipe: true }).catch(() => undefined);
    await cleanInstance(config);
    rmSync(dir, { recursive: true, force: true });
  });

  const ready = () =>
    expect.poll(() => stack?.worker.pool?.size(), { timeout: 90_000, interval: 200 }).toBe(1);

  it('serves a new conversation from the pool with its capped workspace, canary and baseline', async () => {
    await ready();
    const before = await driver.listPool();
    const reply = await replyText(
      stack?.url ?? '',
      'pcap-a',
      'df -m /workspace | tail -1; echo from-a > a.txt',
    );
    // df -m: the cap (256 MiB less ext4's own share), not the host's disk.
    const size = Number(/\s(\d+)\s+\d+\s+\d+\s+\d+%\s+\/workspace/.exec(reply)?.[1]);
    expect(size).toBeGreaterThan(200);
    expect(size).toBeLessThanOrEqual(256);
    const sandbox = (await driver.list()).find((s) => s.conversation === a);
    expect(sandbox).toMatchObject({ pooled: true, state: 'running' });
    expect(before.map((p) => p.containerId)).toContain(sandbox?.containerId);
    // Its image names are linked to the pooled images; the console's usage finds them by its name.
    expect(linkOf(a)).toMatch(/-ws-pool-[0-9a-f]+$/);
    const names = sandboxNames(config.SANDBOT_INSTANCE, a);
    expect((await quotaUsage(root, names.workspaceVolume))?.total).toBeLessThanOrEqual(256 * 1024 * 1024);
    // The canary formatted into the pooled image is the conversation's own.
    const token = await redis.get(conversationKeys(config.SANDBOT_INSTANCE, a).canary);
    const planted = (await driver.snapshotWorkspace(a)).entries['/workspace/.aws/credentials'];
    expect(planted?.sha256).toBe(sha256(canaryFileContent(token ?? '')));
    let events = parseEvents((await journal.read(a)) ?? '');
    for (let i = 0; i < 100 && !events.some((e) => e.kind === 'turn.finished'); i++) {
      await new Promise((r) => setTimeout(r, 100));
      events = parseEvents((await journal.read(a)) ?? '');
    }
    expect(events.find((e) => e.kind === 'sandbox.create')?.data).toMatchObject({ pooled: true });
    const files = events.filter((e) => e.kind.startsWith('file.')).map((e) => `${e.kind} ${e.data.path}`);
    expect(files).toEqual(['file.created /workspace/a.txt']);
  });

  it('keeps its files across an idle stop and an rm without --wipe', async () => {
    const url = stack?.url ?? '';
    expect(await driver.stop(a)).toBe(true);
    expect(await replyText(url, 'pcap-a', 'cat a.txt')).toContain('from-a');
    const claimed = (await driver.list()).find((s) => s.conversation === a);
    expect(await driver.remove(a)).toBe(true);
    expect(await replyText(url, 'pcap-a', 'cat a.txt; df -m /workspace | tail -1')).toMatch(
      /from-a[\s\S]*\/workspace/,
    );
    const recreated = (await driver.list()).find((s) => s.conversation === a);
    expect(recreated?.containerId).not.toBe(claimed?.containerId);
    expect(recreated?.pooled).toBeUndefined();
  });

  it('gives a second conversation other images, where nothing of the first is', async () => {
    await ready();
    const reply = await replyText(stack?.url ?? '', 'pcap-b', 'ls -a /workspace; cat /workspace/a.txt');
    expect(reply).toContain('No such file or directory');
    expect(reply).not.toContain('from-a');
    expect((await driver.list()).find((s) => s.conversation === b)?.pooled).toBe(true);
    expect(linkOf(b)).toMatch(/-ws-pool-/);
    expect(linkOf(b)).not.toBe(linkOf(a));
    const tokens = await Promise.all(
      [a, b].map((c) => redis.get(conversationKeys(config.SANDBOT_INSTANCE, c).canary)),
    );
    expect(tokens[0]).not.toBe(tokens[1]);
  });

  it('removes the images with rm --wipe; a new start is empty', async () => {
    const image = path.join(root, `${linkOf(a)}.img`);
    expect(existsSync(image)).toBe(true);
    expect(await driver.remove(a, { wipe: true })).toBe(true);
    expect(existsSync(image)).toBe(false);
    expect(linkOf(a)).toBeUndefined();
    expect(await replyText(stack?.url ?? '', 'pcap-a', 'ls a.txt')).toContain('No such file or directory');
  });

  it('removes the waiting pooled images when the worker stops, keeping claimed ones', async () => {
    await ready();
    const waiting = (await driver.listPool()).map((p) => p.name.replace('-pool-', '-ws-pool-'));
    expect(waiting).toHaveLength(1);
    await stack?.stop();
    stack = undefined;
    for (const name of waiting) expect(existsSync(path.join(root, `${name}.img`))).toBe(false);
    expect(existsSync(path.join(root, `${linkOf(b)}.img`))).toBe(true);
  });
});
