import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDocker } from '../../sandbox/host/driver/docker-client.js';
import { DATA_VOLUME_LABEL } from '../../sandbox/host/driver/docker-pool.js';
import { sandboxNames } from '../../sandbox/host/driver/docker-spec.js';
import { sandboxDriverFromConfig } from '../../sandbox/host/driver/from-config.js';
import type { Config } from '../../src/contracts/config/schema.js';
import { webConversationId } from '../../src/contracts/conversation/id.js';
import { conversationKeys } from '../../src/contracts/redis/keys.js';
import { AuditJournal } from '../../src/shared/audit/journal.js';
import { parseEvents } from '../../src/shared/audit/summary.js';
import { canaryFileContent } from '../../src/worker/turn/canary.js';
import { type FakeOllama, startFakeOllama } from '../../testkit/fakes/fake-ollama.js';
import { cleanInstance } from '../../testkit/instance.js';
import { REDIS_URL, testInstance } from '../../testkit/redis.js';
import { replyText, shellModel, turnEnd } from '../helpers/shell-model.js';
import { startStack, testConfig } from '../helpers/stack.js';

/**
 * The warm pool (SANDBOX_WARM_POOL) on the real engine and Redis: a new conversation is served by a
 * sandbox started ahead, which is then its own (files, canary, every sandbox command), and never
 * another conversation's.
 */

const docker = createDocker(undefined);
const POOLED_VOLUME = /-(ws|sess)-pool-[0-9a-f]+$/;
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

async function volumesOf(config: Config): Promise<string[]> {
  const { Volumes } = await docker.listVolumes({
    filters: { label: [`sandbot.instance=${config.SANDBOT_INSTANCE}`] },
  });
  return (Volumes ?? []).map((v) => v.Name);
}

describe('a warm pool of two', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sandbot-pool-audit-'));
  const config = testConfig(testInstance('pool'), {
    SANDBOX_WARM_POOL: '2',
    // Plain volumes here; the capped pool: warm-pool-capped.test.ts.
    SANDBOX_WORKSPACE_MB: '0',
    SANDBOT_AUDIT_DIR: dir,
  });
  const driver = sandboxDriverFromConfig(config);
  const journal = new AuditJournal(dir, config.SANDBOT_INSTANCE);
  const a = webConversationId('pool-a');
  const b = webConversationId('pool-b');
  let stack: Awaited<ReturnType<typeof startStack>> | undefined;
  let orphan = '';

  beforeAll(async () => {
    Object.assign(config, { OLLAMA_HOST: ollama.url });
    // Left behind by a worker that died: its owner mark is not in Redis.
    orphan = (await driver.createPooled('pool-dead', [])).name;
    stack = await startStack(config);
  });

  afterAll(async () => {
    await stack?.stop();
    await cleanInstance(config);
    rmSync(dir, { recursive: true, force: true });
  });

  const ready = () =>
    expect.poll(() => stack?.worker.pool?.size(), { timeout: 90_000, interval: 200 }).toBe(2);

  it('removes a dead worker’s pooled sandbox and fills its own', async () => {
    await ready();
    const pooled = await driver.listPool();
    expect(pooled.map((p) => p.name)).not.toContain(orphan);
    expect(pooled).toHaveLength(2);
    expect(pooled.every((p) => p.state === 'running' && p.owner === stack?.worker.pool?.owner)).toBe(true);
  });

  it('serves a new conversation from the pool, records its turn, and refills', async () => {
    const before = await driver.listPool();
    const reply = await replyText(stack?.url ?? '', 'pool-a', 'echo from-a > a.txt && ls -a');
    expect(reply).toContain('a.txt');
    expect(reply).toContain('.aws');
    const sandbox = (await driver.list()).find((s) => s.conversation === a);
    expect(sandbox).toMatchObject({
      pooled: true,
      state: 'running',
      name: sandboxNames(config.SANDBOT_INSTANCE, a).container,
    });
    expect(before.map((p) => p.containerId)).toContain(sandbox?.containerId);
    // The canary planted in the pool is the conversation's own now.
    const token = await redis.get(conversationKeys(config.SANDBOT_INSTANCE, a).canary);
    const planted = (await driver.snapshotWorkspace(a)).entries['/workspace/.aws/credentials'];
    expect(planted?.sha256).toBe(sha256(canaryFileContent(token ?? '')));
    // The turn's file change is recorded (after the reply: wait for the turn's end in the audit); the
    // worker's canary is not the agent's doing.
    let events = parseEvents((await journal.read(a)) ?? '');
    for (let i = 0; i < 100 && !events.some((e) => e.kind === 'turn.finished'); i++) {
      await new Promise((r) => setTimeout(r, 100));
      events = parseEvents((await journal.read(a)) ?? '');
    }
    expect(events.find((e) => e.kind === 'sandbox.create')?.data).toMatchObject({ pooled: true });
    const files = events.filter((e) => e.kind.startsWith('file.')).map((e) => `${e.kind} ${e.data.path}`);
    expect(files).toEqual(['file.created /workspace/a.txt']);
    await ready();
    expect((await driver.listPool()).map((p) => p.containerId)).not.toContain(sandbox?.containerId);
  });

  it('gives a second conversation another sandbox, where nothing of the first is', async () => {
    const reply = await replyText(
      stack?.url ?? '',
      'pool-b',
      'ls -a /workspace; cat /workspace/a.txt; echo b > b.txt',
    );
    expect(reply).toContain('No such file or directory');
    expect(reply).not.toContain('from-a');
    const sandboxes = await driver.list();
    const sa = sandboxes.find((s) => s.conversation === a);
    const sb = sandboxes.find((s) => s.conversation === b);
    expect(sb?.pooled).toBe(true);
    expect(sb?.containerId).not.toBe(sa?.containerId);
    const tokens = await Promise.all(
      [a, b].map((c) => redis.get(conversationKeys(config.SANDBOT_INSTANCE, c).canary)),
    );
    expect(tokens[0]).not.toBe(tokens[1]);
    expect(Object.keys((await driver.snapshotWorkspace(b)).entries).sort()).toEqual([
      '/workspace/.aws/credentials',
      '/workspace/b.txt',
    ]);
  });

  it('trips the canary of a pooled sandbox (read without naming the file)', async () => {
    const end = await turnEnd(stack?.url ?? '', 'pool-c', 'cat ~/.aws/cred*');
    expect(end.type === 'error' && end.message).toMatch(
      /the agent read the canary credentials file; by tripwire/,
    );
  });

  it('stops, removes and wipes a claimed sandbox like any other', async () => {
    const url = stack?.url ?? '';
    expect(await driver.stop(a)).toBe(true);
    expect((await driver.list()).find((s) => s.conversation === a)?.state).toBe('exited');
    expect(await replyText(url, 'pool-a', 'cat a.txt')).toContain('from-a');
    // Removed without --wipe: a new container, the same files (its volumes bind onto the pooled data).
    const claimed = (await driver.list()).find((s) => s.conversation === a);
    expect(await driver.remove(a)).toBe(true);
    expect(await replyText(url, 'pool-a', 'cat a.txt')).toContain('from-a');
    const recreated = (await driver.list()).find((s) => s.conversation === a);
    expect(recreated?.containerId).not.toBe(claimed?.containerId);
    expect(recreated?.pooled).toBeUndefined();
    const names = sandboxNames(config.SANDBOT_INSTANCE, a);
    const own = await docker.getVolume(names.workspaceVolume).inspect();
    const data = own.Labels?.[DATA_VOLUME_LABEL] ?? '';
    expect(data).toMatch(/-ws-pool-/);
    expect(await volumesOf(config)).toContain(data);
    // Wiped: its own volumes and the pooled data volumes under them are gone; a new start is empty.
    expect(await driver.remove(a, { wipe: true })).toBe(true);
    const left = await volumesOf(config);
    for (const volume of [names.workspaceVolume, names.sessionVolume, data])
      expect(left).not.toContain(volume);
    expect(await replyText(url, 'pool-a', 'ls a.txt')).toContain('No such file or directory');
  });

  it('recreates a claimed sandbox for a new network policy, keeping its files', async () => {
    const network = `${config.SANDBOT_INSTANCE}-test-net`;
    await docker.createNetwork({
      Name: network,
      Internal: true,
      Labels: { 'sandbot.instance': config.SANDBOT_INSTANCE },
    });
    try {
      const claimed = (await driver.list()).find((s) => s.conversation === b);
      const session = await driver.open(b, { network: { name: network, proxyUrl: 'http://192.0.2.1:3128' } });
      expect(session.containerId).not.toBe(claimed?.containerId);
      await session.close();
      expect(Object.keys((await driver.snapshotWorkspace(b)).entries)).toContain('/workspace/b.txt');
      expect(await driver.kill(b)).toBe(true);
      expect((await driver.list()).find((s) => s.conversation === b)?.state).toBe('exited');
    } finally {
      await driver.remove(b, { wipe: true });
      await docker.getNetwork(network).remove();
    }
  });

  it('removes what is left in the pool when the worker stops', async () => {
    await ready();
    expect((await driver.listPool()).length).toBe(2);
    await stack?.stop();
    stack = undefined;
    expect(await driver.listPool()).toEqual([]);
    const left = await volumesOf(config);
    // Only claimed sandboxes' data stays (the pooled volumes a conversation's own volumes bind onto).
    const bound = await Promise.all(
      left
        .filter((v) => !POOLED_VOLUME.test(v))
        .map(async (v) => (await docker.getVolume(v).inspect()).Labels?.[DATA_VOLUME_LABEL]),
    );
    expect(left.filter((v) => POOLED_VOLUME.test(v) && !bound.includes(v))).toEqual([]);
  });
});

describe('a warm pool under SANDBOX_MAX_LIVE', () => {
  const config = testConfig(testInstance('pool-cap'), {
    SANDBOX_WARM_POOL: '2',
    SANDBOX_MAX_LIVE: '2',
    SANDBOX_WORKSPACE_MB: '0',
  });
  const driver = sandboxDriverFromConfig(config);
  let stack: Awaited<ReturnType<typeof startStack>>;

  beforeAll(async () => {
    Object.assign(config, { OLLAMA_HOST: ollama.url });
    stack = await startStack(config);
  });

  afterAll(async () => {
    await stack?.stop();
    await cleanInstance(config);
  });

  const live = async () =>
    (await driver.list()).filter((s) => s.state === 'running').length + (await driver.listPool()).length;

  it('counts pooled sandboxes as live, and gives them up first', async () => {
    // Two pooled sandboxes fill both slots.
    await expect.poll(() => stack.worker.pool?.size(), { timeout: 90_000, interval: 200 }).toBe(2);
    expect(await live()).toBe(2);
    // A new conversation at the cap: one pooled sandbox makes room, the other becomes the conversation's;
    // the pool then refills only the slot that is free.
    expect(await replyText(stack.url, 'cap-a', 'echo a')).toContain('exit code 0');
    expect((await driver.list()).find((s) => s.conversation === 'web:cap-a')?.pooled).toBe(true);
    await expect.poll(() => stack.worker.pool?.size(), { timeout: 90_000, interval: 200 }).toBe(1);
    expect(await live()).toBe(2);
    // The next one takes the last pooled sandbox's slot; nothing refills past the cap.
    expect(await replyText(stack.url, 'cap-b', 'echo b')).toContain('exit code 0');
    const running = (await driver.list()).filter((s) => s.state === 'running');
    expect(running.map((s) => s.conversation).sort()).toEqual(['web:cap-a', 'web:cap-b']);
    expect(await live()).toBe(2);
    expect(stack.worker.pool?.size()).toBe(0);
  });
});
