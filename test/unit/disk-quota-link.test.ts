import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { linkQuotaName, quotaName, unlinkQuotaName } from '../../sandbox/host/driver/disk-quota-link.js';

/** A claimed pooled sandbox's images are found by the conversation's names through a link file. */
describe('disk links of claimed pooled sandboxes', () => {
  let root: string;
  beforeEach(() => {
    root = mkdtempSync(path.join(tmpdir(), 'sandbot-link-'));
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('resolves a linked name to the pooled image, and others to themselves', async () => {
    expect(await quotaName(root, 'i-ws-web-a')).toBe('i-ws-web-a');
    await linkQuotaName(root, 'i-ws-web-a', 'i-ws-pool-0123');
    expect(await quotaName(root, 'i-ws-web-a')).toBe('i-ws-pool-0123');
    await unlinkQuotaName(root, 'i-ws-web-a');
    expect(await quotaName(root, 'i-ws-web-a')).toBe('i-ws-web-a');
  });

  it('never shadows an image or a link of the conversation’s own', async () => {
    writeFileSync(path.join(root, 'i-ws-web-b.img'), '');
    await expect(linkQuotaName(root, 'i-ws-web-b', 'i-ws-pool-1')).rejects.toThrow(/image of its own/);
    await linkQuotaName(root, 'i-ws-web-c', 'i-ws-pool-2');
    await expect(linkQuotaName(root, 'i-ws-web-c', 'i-ws-pool-3')).rejects.toThrow(/EEXIST/);
    expect(await quotaName(root, 'i-ws-web-c')).toBe('i-ws-pool-2');
  });

  it('refuses a link to anything but an image name', async () => {
    await expect(linkQuotaName(root, 'i-ws-web-d', '../etc')).rejects.toThrow(/not an image name/);
    writeFileSync(path.join(root, 'i-ws-web-e.link'), '../../x');
    await expect(quotaName(root, 'i-ws-web-e')).rejects.toThrow(/not an image name/);
  });
});
