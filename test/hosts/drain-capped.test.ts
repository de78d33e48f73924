import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDocker } from '../../sandbox/host/driver/docker-client.js';
import { sandboxNames } from '../../sandbox/host/driver/docker-spec.js';
import { sandboxDriverFromConfig } from '../../sandbox/host/driver/from-config.js';
import { webConversationId } from '../../src/contracts/conversation/id.js';
import type { OutboundEvent } from '../../src/contracts/protocol/outbound.js';
import { instanceKeys } from '../../src/contracts/redis/keys.js';
import { ConversationStore } from '../../src/shared/queue/conversation-store.js';
import { unmountUnder } from '../../testkit/engine.js';
import { cleanInstance } from '../../testkit/instance.js';
import { REDIS_URL, testInstance } from '../../testkit/redis.js';
import { rehomedEvents } from '../helpers/host-workers.js';
import { openSse, postMessage } from '../helpers/sse.js';
import { testConfig } from '../helpers/stack.js';
import { startTwoHostStack, type TwoHostStack } from '../helpers/two-host-stack.js';

/**
 * Issue #20's drain with the default settings: every /workspace and /session a size-capped image (issue
 * #17) in its worker's own SANDBOX_DISK_DIR, on two hosts (the system's engine and a second dockerd,
 * a worker process beside each). `sandbot host drain B` (the CLI, its own process) has a worker of A
 * move each idle conversation: files, owners, modes and links as they were, /workspace capped on A, B's
 * sandbox and images gone, the move in the audit; a busy conversation is left with a line, and a copy
 * over `--max-mb`, or from an image not mounted on B, fails with a line, leaving the conversation on B
 * with its files.
 */

const run = promisify(execFile);
const config = testConfig(testInstance('drain'), {
  SANDBOT_USER_MESSAGES_PER_MINUTE: '0',
  SANDBOT_USER_CONVERSATIONS_PER_HOUR: '0',
});
const system = createDocker(process.env.DOCKER_HOST);
const redis = new Redis(REDIS_URL);
const disks = {
  a: mkdtempSync(join(tmpdir(), 'sandbot-drain-a-')),
  b: mkdtempSync(join(tmpdir(), 'sandbot-drain-b-')),
};
let stack: TwoHostStack | undefined;
let skipReason: string | undefined;
const ids = { a: '', b: '' };

const homeOf = async (session: string) =>
  redis.hget(instanceKeys(config.SANDBOT_INSTANCE).homes, webConversationId(session));

/** Runs one shell command as a turn; the tool's output. */
async function shell(session: string, command: string): Promise<string> {
  const sse = await openSse(`${stack?.gateway.url}/api/conversations/${session}/events`);
  try {
    await postMessage(stack?.gateway.url ?? '', session, command);
    const end = await sse.waitFor((e: OutboundEvent) => e.type === 'reply' || e.type === 'error', 120_000);
    if (end.type !== 'reply') throw new Error(`turn failed: ${JSON.stringify(end)}`);
    return end.text.replace(/^tool said: /, '');
  } finally {
    sse.close();
  }
}

/** The CLI as its own process: its output and exit code. */
const cli = async (...args: string[]) =>
  (await stack?.cli(args, { timeoutMs: 300_000 })) ?? { out: 'no stack', code: -1 };

/** Capped images (by volume name) in a worker's disk folder. */
const images = (label: 'a' | 'b') =>
  readdirSync(disks[label])
    .filter((f) => f.endsWith('.img'))
    .map((f) => f.slice(0, -4));
const volumesOf = (session: string) => {
  const names = sandboxNames(config.SANDBOT_INSTANCE, webConversationId(session));
  return [names.workspaceVolume, names.sessionVolume];
};

// Files of each kind: a folder and a file with their own modes, a link inside, a link pointing out.
const WRITE =
  'mkdir -p sub && echo kept > sub/a && chmod 640 sub/a && chmod 711 sub && ln -sf sub/a link && ln -sfn /etc/passwd outside && : > empty && : > locked && chmod 000 locked && echo turn-1 >> notes';
const LOOK =
  "stat -c '%n %a %u:%g %F %s' sub sub/a link outside empty locked notes; stat -c '%Y' sub/a; readlink link outside; cat sub/a notes";

beforeAll(async () => {
  // Default disk caps; each worker its own folder of images.
  const started = await startTwoHostStack(config, redis, (label) => ({ SANDBOX_DISK_DIR: disks[label] }));
  if ('skipReason' in started) {
    skipReason = started.skipReason;
    return;
  }
  stack = started.stack;
  Object.assign(ids, stack.ids);
}, 300_000);

afterAll(async () => {
  await stack?.stop();
  const engine = stack?.engine;
  if (engine) {
    const onB = sandboxDriverFromConfig({ ...config, DOCKER_HOST: engine.host, SANDBOX_DISK_DIR: disks.b });
    for (const sandbox of await onB.list().catch(() => []))
      await onB.remove(sandbox.conversation, { wipe: true });
  }
  await engine?.remove();
  await cleanInstance({ ...config, SANDBOX_DISK_DIR: disks.a });
  // Whatever images are left (a sandbox-less copy), unmounted before their folders go.
  for (const dir of Object.values(disks)) {
    await unmountUnder(dir);
    rmSync(dir, { recursive: true, force: true });
  }
  redis.disconnect();
}, 180_000);

describe('sandbot host drain with size-capped volumes (the defaults)', () => {
  it('moves idle conversations with their files, leaves a busy one and an oversized one on their host', async (context) => {
    if (skipReason || !stack) return context.skip(skipReason);
    const { engine } = stack;
    const keys = instanceKeys(config.SANDBOT_INSTANCE);
    // Host A drained first: every new conversation starts on B.
    await redis.sadd(keys.drainingHosts, ids.a);
    await shell('small', WRITE);
    await shell('big', 'head -c 3000000 /dev/urandom > big && truncate -s 100M sparse && md5sum big');
    await shell('busy', 'echo turn-1 > notes');
    await shell('unmounted', 'echo turn-1 > notes');
    for (const session of ['small', 'big', 'busy', 'unmounted']) expect(await homeOf(session)).toBe(ids.b);
    // Its image unmounted on B (as after a reboot): its mount point reads as an empty folder.
    await run('umount', ['-l', join(disks.b, 'mnt', volumesOf('unmounted')[0] ?? '')]);
    const before = await shell('small', LOOK);
    expect(before).toContain('sub 711 1000:1000 directory');
    expect(before).toContain('sub/a 640 1000:1000 regular file 5');
    expect(before).toContain('outside 777 1000:1000 symbolic link');
    expect(before).toContain('locked 0 1000:1000 regular empty file 0');
    const bigSum = (await shell('big', 'md5sum big')).trim();
    expect(images('b')).toEqual(expect.arrayContaining(volumesOf('small')));
    await redis.srem(keys.drainingHosts, ids.a);

    // A turn runs in `busy` while the drain looks: it is left, with a line.
    const busyTurn = shell('busy', 'sleep 12; cat notes');
    const store = new ConversationStore(redis, config.SANDBOT_INSTANCE);
    while ((await store.leaseHolder(webConversationId('busy'))) === null)
      await new Promise((resolve) => setTimeout(resolve, 100));
    const first = await cli('host', 'drain', ids.b, '--to', ids.a, '--max-mb', '1');
    expect(first.out).toMatch(/web:small: moved to .* \(\d+ bytes\)/);
    expect(first.out).toContain('web:big: not moved: more than 1 MiB to copy (--max-mb): stopped');
    expect(first.out).toContain('web:busy: busy (a turn is running or messages wait): left here');
    expect(first.out).toMatch(
      /web:unmounted: not moved: the source's size-capped \/workspace is not mounted there/,
    );
    expect(first.out).toContain(`1 of 4 conversations moved to ${ids.a}`);
    expect(first.code).toBe(1);
    expect(await busyTurn).toContain('turn-1');

    // `small` lives on A now: its files as they were, its /workspace capped there, B's copy gone.
    expect(await homeOf('small')).toBe(ids.a);
    expect(await shell('small', LOOK)).toBe(before);
    const df = await shell('small', 'df -P -k /workspace | tail -1');
    const kib = Number(/(\d+)\s+\d+\s+\d+\s+\d+%\s+\/workspace/.exec(df)?.[1]);
    expect(kib).toBeGreaterThan(1800 * 1024);
    expect(kib).toBeLessThanOrEqual(2048 * 1024);
    expect(images('a')).toEqual(expect.arrayContaining(volumesOf('small')));
    const small = sandboxNames(config.SANDBOT_INSTANCE, webConversationId('small'));
    await expect(engine.docker.getContainer(small.container).inspect()).rejects.toThrow();
    // B's worker frees the images it kept (its own disk folder).
    const deadline = Date.now() + 30_000;
    while (images('b').some((i) => volumesOf('small').includes(i)) && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 250));
    expect(images('b')).not.toEqual(expect.arrayContaining([volumesOf('small')[0]]));
    expect(existsSync(join(disks.b, 'mnt', small.workspaceVolume))).toBe(false);
    const rehomed = await rehomedEvents(redis, config.SANDBOT_INSTANCE, 'small');
    expect(rehomed).toEqual([
      expect.objectContaining({
        actor: expect.stringMatching(/^admin:/),
        data: expect.objectContaining({ from: ids.b, to: ids.a, reason: 'drain', bytes: expect.any(Number) }),
      }),
    ]);

    // `big` stays on B with its files; A kept nothing of the failed copy.
    expect(await homeOf('big')).toBe(ids.b);
    expect((await shell('big', 'md5sum big')).trim()).toBe(bigSum);
    expect(images('a')).not.toEqual(expect.arrayContaining([volumesOf('big')[0]]));
    const big = sandboxNames(config.SANDBOT_INSTANCE, webConversationId('big'));
    await expect(system.getContainer(big.container).inspect()).rejects.toThrow();

    // Taken for empty, it would have lost its files: it stays on B, whose next turn mounts them again.
    expect(await homeOf('unmounted')).toBe(ids.b);
    expect(await shell('unmounted', 'cat notes')).toContain('turn-1');

    // Run again without the small bound: the rest move, the sparse file within the cap.
    const second = await cli('host', 'drain', ids.b, '--to', ids.a);
    expect(second.out).toContain(`3 of 3 conversations moved to ${ids.a}`);
    expect(second.code).toBe(0);
    expect((await shell('big', 'md5sum big; stat -c %s sparse')).trim()).toBe(`${bigSum}\n104857600`);
    expect(await shell('busy', 'cat notes')).toContain('turn-1');
    expect(await shell('unmounted', 'cat notes')).toContain('turn-1');
    expect(await homeOf('unmounted')).toBe(ids.a);
  }, 600_000);
});
