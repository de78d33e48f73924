import { mkdtemp, rm, stat } from 'node:fs/promises';
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
});
