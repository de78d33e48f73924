import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureQuotaMount, quotaUsage, removeQuotaMount } from '../../sandbox/host/driver/disk-quota.js';

/**
 * A new capped volume's image: formatted without writing its journal's zeros (a new sparse file reads
 * as zeros already), so a burst of new conversations does not queue 64 MiB of writes per workspace; the
 * file system is whole all the same (its size, its agent-owned folders, a file written and read back).
 */

let root: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'sandbot-quota-image-'));
});

afterAll(async () => {
  await removeQuotaMount(root, 'quota-image-test');
  await removeQuotaMount(root, 'quota-image-seeded');
  await rm(root, { recursive: true, force: true });
});

describe('capped volume image', () => {
  it('takes a few MiB of disk for a 2 GiB volume and mounts as a whole file system', async () => {
    const mounted = await ensureQuotaMount(root, 'quota-image-test', 2048, ['inbox', 'outbox']);
    const image = await stat(join(root, 'quota-image-test.img'));
    expect(image.size).toBe(2048 * 1024 * 1024);
    // Zeroing the journal would allocate 64 MiB of the image file.
    expect(image.blocks * 512).toBeLessThan(8 * 1024 * 1024);
    const usage = await quotaUsage(root, 'quota-image-test');
    expect(usage?.total).toBeGreaterThan(1900 * 1024 * 1024);
    for (const folder of ['', 'inbox', 'outbox']) {
      const info = await stat(join(mounted, folder));
      expect(info.uid).toBe(1000);
    }
  });

  it('holds the seed files as planted (agent-owned, 0600 in a 0700 folder), and says so once', async () => {
    let planted = 0;
    const seed = {
      files: async () => [{ path: '.aws/credentials', bytes: Buffer.from('[default]\nkey = AKIA1\n') }],
      planted: () => {
        planted += 1;
      },
    };
    const mounted = await ensureQuotaMount(root, 'quota-image-seeded', 64, ['inbox'], seed);
    expect(planted).toBe(1);
    const file = await stat(join(mounted, '.aws/credentials'));
    const folder = await stat(join(mounted, '.aws'));
    expect([file.uid, file.mode & 0o777, folder.uid, folder.mode & 0o777]).toEqual([
      1000, 0o600, 1000, 0o700,
    ]);
    expect(await readFile(join(mounted, '.aws/credentials'), 'utf8')).toBe('[default]\nkey = AKIA1\n');
    // An image that exists is mounted as it is: nothing planted again.
    await ensureQuotaMount(root, 'quota-image-seeded', 64, ['inbox'], seed);
    expect(planted).toBe(1);
  });

  it('refuses a seed path that leaves the workspace', async () => {
    const seed = {
      files: async () => [{ path: '../escape', bytes: Buffer.from('x') }],
      planted: () => undefined,
    };
    await expect(ensureQuotaMount(root, 'quota-image-escape', 64, [], seed)).rejects.toThrow(
      /plain relative path/,
    );
    await removeQuotaMount(root, 'quota-image-escape');
  });
});
