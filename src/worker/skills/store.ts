import { z } from 'zod';
import { Grant } from '../../contracts/policy/network-policy.js';
import { describeDifference } from '../../contracts/skills/file-hashes.js';
import { BehaviourReport } from './behaviour/report.js';
import { contentHash, fileDigests, type SkillFile } from './hashing.js';
import type { SkillLedger } from './ledger.js';
import { SkillManifest, SkillName, SkillVersion } from './manifest.js';
import { RULE_IDS } from './scan-rules.js';

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

/**
 * Where vetted skills are kept: their exact scanned bytes, what is known about them (hashes, findings,
 * reports, approval) and the ledger of what admins did. A folder (dir-store.ts, SANDBOT_SKILLS_DIR: one
 * machine, or a shared folder) or PostgreSQL (pg-store.ts, SANDBOT_DATABASE_URL: every host and the CLI
 * without a shared folder); open-store.ts picks. Either way `verify` hashes the bytes as they are
 * stored now, so a change to them is exactly what approval pinning catches.
 */
export interface SkillStore {
  /** Where the skills are, for messages. */
  readonly root: string;
  /** The ledger kept with these skills. */
  readonly ledger: SkillLedger;
  /** Writes the scanned files and their record, replacing what was there for that name@version. */
  stage(record: SkillRecord, files: readonly SkillFile[]): Promise<void>;
  /** Replaces the record of a staged name@version (its files stay). */
  save(record: SkillRecord): Promise<void>;
  get(name: string, version: string): Promise<SkillRecord | undefined>;
  /** Every version of every skill (or of one), names sorted, newest version first within a name. */
  list(name?: string): Promise<SkillRecord[]>;
  /** The named version, or else the newest approved version of the name (else its newest). */
  pick(name: string, version?: string): Promise<SkillRecord | undefined>;
  remove(name: string, version: string): Promise<boolean>;
  /** The stored files, within SKILL_LIMITS; throws in words when they cannot be read. */
  readFiles(record: Pick<SkillRecord, 'name' | 'version'>): Promise<SkillFile[]>;
  /**
   * Hashes the stored files now and compares them with `expected` (the approval's hash, or the
   * scanned hash when none is given). Read failures count as a mismatch, in words.
   */
  verify(record: SkillRecord, expected?: string): Promise<Verification>;
  close(): Promise<void>;
}

/** Both backends' `pick`. */
export async function pickFrom(
  store: Pick<SkillStore, 'get' | 'list'>,
  name: string,
  version?: string,
): Promise<SkillRecord | undefined> {
  if (version) return store.get(name, version);
  const all = await store.list(name);
  return all.find((r) => r.status === 'approved') ?? all[0];
}

/** Both backends' `verify`: the same hash over the bytes, whether read from files or rows. */
export async function verifyStored(
  store: Pick<SkillStore, 'readFiles'>,
  record: SkillRecord,
  expected = record.approval?.hash ?? record.hash,
): Promise<Verification> {
  let files: SkillFile[];
  try {
    files = await store.readFiles(record);
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

/** Whether a name and version may be looked up (anything else is no skill). */
export const validRef = (name: string, version: string): boolean =>
  SkillName.safeParse(name).success && SkillVersion.safeParse(version).success;
