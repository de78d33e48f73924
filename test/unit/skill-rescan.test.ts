import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { statusOf } from '../../src/worker/skills/report.js';
import { resolveSkills } from '../../src/worker/skills/resolve.js';
import { PARSED_READERS_REVISION, SCANNER_VERSION } from '../../src/worker/skills/scanner-version.js';
import type { SkillRecord } from '../../src/worker/skills/store.js';
import { addSkill, approveSkill } from '../../src/worker/skills/vetting.js';
import { BENIGN, MALICIOUS } from '../fixtures/skill-corpus.js';
import { type SkillFiles, writeSkill } from '../helpers/skill-fixtures.js';
import { registryOf } from '../helpers/skill-stack.js';

/** Skills approved under an older scanner are scanned again before they are used or shown. */

const dir = await mkdtemp(join(tmpdir(), 'sandbot-rescan-'));
afterAll(() => rm(dir, { recursive: true, force: true }));
const registry = registryOf({ SANDBOT_SKILLS_DIR: dir });

/** Adds and approves a skill, then makes its record look approved under an older scanner with `findings`. */
async function approvedUnderOldRules(files: SkillFiles, name: string): Promise<SkillRecord> {
  await addSkill(registry, await writeSkill(files), 'ann');
  const approved = await approveSkill(registry, `${name}@1.0.0`, {
    by: 'ann',
    hosts: 'all',
    acceptFindings: true,
  });
  const old: SkillRecord = {
    ...approved,
    findings: [],
    scannerVersion: 'r0-older',
    approval: {
      ...(approved.approval as NonNullable<SkillRecord['approval']>),
      acceptedFindings: 0,
      scannerVersion: 'r0-older',
    },
  };
  await registry.store.save(old);
  return old;
}

describe('a scanner change', () => {
  it('withdraws the approval of a skill the new rules find critical, says why, and records the rescan', async () => {
    await approvedUnderOldRules(MALICIOUS['encoded-python'] as SkillFiles, 'encoded-python');
    const { active, refused } = await resolveSkills(registry.store, [
      { name: 'encoded-python', version: '1.0.0' },
    ]);
    expect(active).toEqual([]);
    expect(refused[0]?.reason).toMatch(/new scanner rules.*1 new critical finding.*approves it again/);
    const record = (await registry.store.get('encoded-python', '1.0.0')) as SkillRecord;
    expect(record).toMatchObject({
      status: 'pending',
      scannerVersion: SCANNER_VERSION,
      rescan: { newCritical: 1 },
    });
    expect(record.approval).toBeUndefined();
    expect(statusOf(record)).toMatch(/^pending: rescanned under new scanner rules .* withdrew its approval$/);
    const ledger = await registry.ledger.read();
    expect(ledger.at(-1)).toMatchObject({
      actor: 'scanner',
      action: 'scan',
      skill: 'encoded-python@1.0.0',
      data: { newCritical: 1, approvalWithdrawn: true },
    });
    // Approving it again needs the override, as for any critical finding.
    await expect(
      approveSkill(registry, 'encoded-python@1.0.0', { by: 'ann', hosts: [], acceptFindings: false }),
    ).rejects.toThrow(/--accept-findings/);
  });

  it('keeps a clean skill approved, says it was rescanned until an admin approves again, and pins the scanner', async () => {
    await approvedUnderOldRules(BENIGN['py-report'] as SkillFiles, 'py-report');
    const { active } = await resolveSkills(registry.store, [{ name: 'py-report', version: '1.0.0' }]);
    expect(active.map((a) => a.record.name)).toEqual(['py-report']);
    const rescanned = (await registry.store.get('py-report', '1.0.0')) as SkillRecord;
    expect(statusOf(rescanned)).toMatch(
      /^approved \(rescanned under new scanner rules on .*: nothing new critical\)$/,
    );
    const again = await approveSkill(registry, 'py-report@1.0.0', {
      by: 'bob',
      hosts: 'all',
      acceptFindings: false,
    });
    expect(again.approval?.scannerVersion).toBe(SCANNER_VERSION);
    expect(statusOf(again)).toBe('approved');
    // Resolved again under the same scanner: no rescan, no ledger entry.
    const entries = (await registry.ledger.read()).length;
    await resolveSkills(registry.store, [{ name: 'py-report', version: '1.0.0' }]);
    expect((await registry.ledger.read()).length).toBe(entries);
  });

  it('withdraws an unchanged skill’s approval on `skill add` when the new scan finds more', async () => {
    const files = MALICIOUS['dns-exfil'] as SkillFiles;
    await approvedUnderOldRules(files, 'dns-exfil');
    const { record, note } = await addSkill(registry, await writeSkill(files), 'ann');
    expect(record.status).toBe('pending');
    expect(note).toMatch(/unchanged, but this scan finds 1 critical finding\(s\).*withdrawn/);
  });
});

describe('the scanner version', () => {
  it('names the parsed readers’ revision: raise PARSED_READERS_REVISION when a reader changes', async () => {
    const folder = join(import.meta.dirname, '../../src/worker/skills/parsed');
    const hash = createHash('sha256');
    for (const file of (await readdir(folder)).sort())
      hash.update(file).update(await readFile(join(folder, file)));
    // When this fails: the readers changed, so skills scanned before may hide what they now find. Raise
    // PARSED_READERS_REVISION in scanner-version.ts, then put the new digest and revision here.
    expect({ revision: PARSED_READERS_REVISION, digest: hash.digest('hex').slice(0, 16) }).toEqual({
      revision: 1,
      digest: 'fd10ccf9599d7a34',
    });
    expect(SCANNER_VERSION).toMatch(new RegExp(`^r${PARSED_READERS_REVISION}-[0-9a-f]{12}$`));
  });
});
