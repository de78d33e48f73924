import { randomUUID } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { Grant } from '../../contracts/policy/network-policy.js';
import { describeDifference } from '../../contracts/skills/file-hashes.js';
import { BehaviourReport } from './behaviour/report.js';
import { contentHash, fileDigests, readSkillDir, type SkillFile } from './hashing.js';
import { compareVersions, SkillManifest, SkillName, SkillVersion } from './manifest.js';
import { RULE_IDS } from './scan-rules.js';

/**
 * Skills on disk, under SANDBOT_SKILLS_DIR: `<name>/<version>/files/…` holds the exact bytes that were
 * scanned, `<name>/<version>/record.json` what is known about them (hashes, scan findings, approval).
 * Files, not Redis: a vetted skill is an artifact an admin can read and diff, the CLI vets without a
 * running stack, and a change to the files on disk is exactly what approval pinning must catch.
 */

const sha = z.string().regex(/^[0-9a-f]{64}$/);
const FindingRecord = z.object({
  rule: z.enum(RULE_IDS),
  severity: z.enum(['critical', 'warning']),
  file: z.string(),
  line: z.number().int().optional(),
  excerpt: z.string().optional(),
  message: z.string(),
});

export const Approval = z.object({
  by: z.string().min(1).max(200),
  at: z.iso.datetime(),
  /** The content hash approved: the files must hash to this for the skill to be used. */
  hash: sha,
  /** The declared hosts the admin granted (a subset of permissions.hosts). */
  hosts: z.array(Grant),
  /** Critical findings the admin accepted when approving (0 for a clean scan). */
  acceptedFindings: z.number().int().nonnegative(),
  /** The scanner whose report the admin read (absent: approved before scanner versions). */
  scannerVersion: z.string().optional(),
  /** The behavioural run whose report the admin read (absent: approved without one). */
  behaviourVersion: z.string().optional(),
});
export type Approval = z.infer<typeof Approval>;

export const SkillRecord = z.object({
  name: SkillName,
  version: SkillVersion,
  hash: sha,
  files: z.array(z.object({ path: z.string(), size: z.number().int().nonnegative(), sha256: sha })),
  manifest: SkillManifest,
  findings: z.array(FindingRecord),
  addedAt: z.iso.datetime(),
  addedBy: z.string(),
  source: z.string(),
  status: z.enum(['pending', 'approved']),
  approval: Approval.optional(),
  /** The scanner that made `findings` (absent: one from before scanner versions). */
  scannerVersion: z.string().optional(),
  /** What the skill's tools did when run in a vetting sandbox (absent: never run). */
  behaviour: BehaviourReport.optional(),
  /**
   * The last rescan under newer rules (static `from`, behavioural `behaviourFrom`), or by `skill scan`
   * (`by`), shown in the status until an admin approves again.
   */
  rescan: z
    .object({
      at: z.iso.datetime(),
      from: z.string(),
      behaviourFrom: z.string().optional(),
      by: z.string().optional(),
      newCritical: z.number().int().nonnegative(),
      /** Whether it withdrew an approval (absent: a rescan from before this was recorded). */
      withdrawn: z.boolean().optional(),
    })
    .optional(),
});
export type SkillRecord = z.infer<typeof SkillRecord>;

export type Verification = { ok: true; files: SkillFile[] } | { ok: false; reason: string };

export class SkillStore {
  constructor(readonly root: string) {}

  private dir(name: string, version: string): string {
    return join(this.root, SkillName.parse(name), SkillVersion.parse(version));
  }

  /** Writes the scanned files and their record, replacing what was there for that name@version. */
  async stage(record: SkillRecord, files: readonly SkillFile[]): Promise<void> {
    const target = this.dir(record.name, record.version);
    const temp = `${target}.staging-${randomUUID().slice(0, 8)}`;
    await rm(temp, { recursive: true, force: true });
    for (const file of files) {
      const path = join(temp, 'files', file.path);
      await mkdir(dirname(path), { recursive: true, mode: 0o755 });
      await writeFile(path, file.bytes, { mode: 0o644 });
    }
    await mkdir(join(temp, 'files'), { recursive: true });
    await writeFile(join(temp, 'record.json'), `${JSON.stringify(SkillRecord.parse(record), null, 2)}\n`);
    await rm(target, { recursive: true, force: true });
    await rename(temp, target);
  }

  async save(record: SkillRecord): Promise<void> {
    const path = join(this.dir(record.name, record.version), 'record.json');
    const temp = `${path}.${randomUUID().slice(0, 8)}`;
    await writeFile(temp, `${JSON.stringify(SkillRecord.parse(record), null, 2)}\n`);
    await rename(temp, path);
  }

  async get(name: string, version: string): Promise<SkillRecord | undefined> {
    if (!SkillName.safeParse(name).success || !SkillVersion.safeParse(version).success) return undefined;
    let text: string;
    try {
      text = await readFile(join(this.dir(name, version), 'record.json'), 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
    const parsed = SkillRecord.safeParse(JSON.parse(text));
    if (!parsed.success)
      throw new Error(
        `${name}@${version}: its record.json is damaged (${parsed.error.issues[0]?.message}); add the skill again`,
      );
    return parsed.data;
  }

  /** Every version of every skill (or of one), newest version first within a name. */
  async list(name?: string): Promise<SkillRecord[]> {
    const names = name ? [name] : await dirNames(this.root);
    const records: SkillRecord[] = [];
    for (const n of names.filter((x) => SkillName.safeParse(x).success).sort()) {
      const versions = (await dirNames(join(this.root, n))).filter((v) => SkillVersion.safeParse(v).success);
      versions.sort((a, b) => compareVersions(b, a));
      for (const v of versions) {
        const record = await this.get(n, v).catch(() => undefined);
        if (record) records.push(record);
      }
    }
    return records;
  }

  /** The named version, or else the newest approved version of the name. */
  async pick(name: string, version?: string): Promise<SkillRecord | undefined> {
    if (version) return this.get(name, version);
    const all = await this.list(name);
    return all.find((r) => r.status === 'approved') ?? all[0];
  }

  async remove(name: string, version: string): Promise<boolean> {
    const record = await this.get(name, version);
    if (!record) return false;
    await rm(this.dir(name, version), { recursive: true, force: true });
    return true;
  }

  async readFiles(record: Pick<SkillRecord, 'name' | 'version'>): Promise<SkillFile[]> {
    return readSkillDir(join(this.dir(record.name, record.version), 'files'));
  }

  /**
   * Hashes the files on disk now and compares them with `expected` (the approval's hash, or the
   * scanned hash when none is given). Read failures count as a mismatch, in words.
   */
  async verify(record: SkillRecord, expected = record.approval?.hash ?? record.hash): Promise<Verification> {
    let files: SkillFile[];
    try {
      files = await this.readFiles(record);
    } catch (error) {
      return { ok: false, reason: `its files cannot be read: ${(error as Error).message}` };
    }
    const digests = fileDigests(files);
    if (contentHash(digests) === expected) return { ok: true, files };
    const what = expected === record.hash ? describeDifference(record.files, digests) : '';
    return {
      ok: false,
      reason: `its files changed since ${record.approval ? 'approval' : 'they were scanned'}${what ? ` (${what})` : ''}`,
    };
  }
}

async function dirNames(path: string): Promise<string[]> {
  try {
    return (await readdir(path, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => e.name);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
}
