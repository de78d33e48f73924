import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Grant } from '../../contracts/policy/network-policy.js';
import { describeDifference } from '../../contracts/skills/file-hashes.js';
import type { BehaviourRunner } from './behaviour/from-config.js';
import { type BehaviourReport, behaviourCritical } from './behaviour/report.js';
import { checkLimits, contentHash, fileDigests, readSkillDir, type SkillFile } from './hashing.js';
import type { SkillLedger } from './ledger.js';
import { parseManifest, parseSkillRef, skillRef } from './manifest.js';
import { newCriticalBehaviour, newCriticalFindings, rescanIfStale, rescanSkill } from './rescan.js';
import { hasCritical, scanSkillFiles } from './scanner.js';
import { SCANNER_VERSION } from './scanner-version.js';
import type { SkillRecord, SkillStore } from './store.js';
import { isTarball, readSkillTarball } from './tarball.js';

/**
 * What the `sandbot skill` commands do: add (read, hash, scan, stage as pending), approve (pin by hash),
 * remove. Each step is written to the skills ledger with who did it. Errors are thrown as words.
 */

export interface Registry {
  store: SkillStore;
  ledger: SkillLedger;
  /**
   * Runs the skill's tools in a vetting sandbox (the CLI always has one). Without it (tests of the
   * static part alone) records carry no behaviour report and approval weighs the static scan only.
   */
  behaviour?: BehaviourRunner;
}

export interface AddResult {
  record: SkillRecord;
  /** What happened to an earlier record of the same name@version, if any. */
  note?: string;
}

export async function readSkillSource(source: string): Promise<SkillFile[]> {
  const path = resolve(source);
  const info = await stat(path).catch(() => undefined);
  if (!info) throw new Error(`${source} does not exist: give a skill folder or a .tar.gz`);
  if (info.isDirectory()) return readSkillDir(path);
  if (isTarball(path)) return readSkillTarball(path);
  throw new Error(`${source} is neither a folder nor a .tar.gz/.tgz/.tar`);
}

export async function addSkill(registry: Registry, source: string, by: string): Promise<AddResult> {
  const actor = `admin:${by}`;
  let files: SkillFile[];
  try {
    files = await readSkillSource(source);
    const over = checkLimits(files);
    if (over) throw new Error(over);
  } catch (error) {
    await registry.ledger.append({
      actor,
      action: 'refuse',
      skill: source,
      data: { reason: (error as Error).message },
    });
    throw error;
  }
  const texts = new Map(files.map((f) => [f.path, f.bytes.toString('utf8')]));
  const parsed = parseManifest(texts);
  if (!parsed.ok) {
    await registry.ledger.append({ actor, action: 'refuse', skill: source, data: { reason: parsed.error } });
    throw new Error(parsed.error);
  }
  const { manifest } = parsed;
  const digests = fileDigests(files);
  const hash = contentHash(digests);
  const findings = await scanSkillFiles(manifest, files);
  const behaviour = registry.behaviour ? await registry.behaviour({ manifest, files }) : undefined;
  const ref = skillRef(manifest);
  const earlier = await registry.store.get(manifest.name, manifest.version).catch(() => undefined);
  let note: string | undefined;
  let approval: SkillRecord['approval'];
  const fresh = earlier
    ? [
        ...newCriticalFindings(earlier.findings, findings),
        ...newCriticalBehaviour(earlier.behaviour, behaviour),
      ]
    : [];
  if (earlier?.approval && earlier.approval.hash === hash && fresh.length > 0) {
    note = `unchanged, but this scan finds ${fresh.length} critical finding(s) the approved report did not: the approval is withdrawn until an admin approves again`;
  } else if (earlier?.approval && earlier.approval.hash === hash) {
    approval = earlier.approval;
    note = `unchanged since ${earlier.approval.by} approved it; it stays approved`;
  } else if (earlier?.approval) {
    note = `its content differs from the approved ${ref} (${describeDifference(earlier.files, digests)}): the approval is withdrawn until an admin approves again`;
  } else if (earlier) {
    note = 'it replaces the pending copy added before';
  }
  const record: SkillRecord = {
    name: manifest.name,
    version: manifest.version,
    hash,
    files: digests,
    manifest,
    findings,
    scannerVersion: SCANNER_VERSION,
    ...(behaviour ? { behaviour } : {}),
    addedAt: new Date().toISOString(),
    addedBy: by,
    source: resolve(source),
    status: approval ? 'approved' : 'pending',
    ...(approval ? { approval } : {}),
  };
  await registry.store.stage(record, files);
  await registry.ledger.append({
    actor,
    action: 'add',
    skill: ref,
    data: { hash, files: digests.length, source: record.source },
  });
  await registry.ledger.append({
    actor,
    action: 'scan',
    skill: ref,
    data: {
      critical: findings.filter((f) => f.severity === 'critical').length,
      warnings: findings.filter((f) => f.severity === 'warning').length,
      findings: findings
        .slice(0, 50)
        .map((f) => ({ rule: f.rule, severity: f.severity, file: f.file, line: f.line })),
      ...(behaviour ? { behaviour: behaviourSummary(behaviour) } : {}),
    },
  });
  return { record, ...(note ? { note } : {}) };
}

/** What the ledger keeps of a behaviour report. */
function behaviourSummary(report: BehaviourReport) {
  return {
    version: report.version,
    status: report.status,
    critical: behaviourCritical(report).length,
    findings: report.findings.slice(0, 50).map((f) => ({ rule: f.rule, severity: f.severity, tool: f.tool })),
  };
}

/** `sandbot skill scan NAME@VERSION`: both scans again, over the stored files, now. */
export async function scanSkill(registry: Registry, refText: string, by: string): Promise<SkillRecord> {
  const ref = parseSkillRef(refText);
  if (!ref?.version) throw new Error(`name the skill as NAME@VERSION (e.g. weather@1.0.0), not "${refText}"`);
  const stored = await registry.store.get(ref.name, ref.version);
  if (!stored) throw new Error(`no skill ${refText}: add it first with \`sandbot skill add PATH\``);
  const now = await registry.store.verify(stored, stored.hash);
  if (!now.ok)
    throw new Error(`${refText}: ${now.reason}; run \`sandbot skill add\` again to vet the new files`);
  return rescanSkill(registry.store, stored, {
    ...(registry.behaviour ? { behaviour: registry.behaviour } : {}),
    actor: `admin:${by}`,
    by,
  });
}

export interface ApproveOptions {
  by: string;
  /** Declared hosts to grant; "all" grants every declared host. */
  hosts: string[] | 'all';
  /** Approve despite critical findings (after reading them). */
  acceptFindings: boolean;
}

export async function approveSkill(
  registry: Registry,
  refText: string,
  options: ApproveOptions,
): Promise<SkillRecord> {
  const ref = parseSkillRef(refText);
  if (!ref?.version) throw new Error(`name the skill as NAME@VERSION (e.g. weather@1.0.0), not "${refText}"`);
  const stored = await registry.store.get(ref.name, ref.version);
  if (!stored) throw new Error(`no skill ${refText}: add it first with \`sandbot skill add PATH\``);
  // The admin approves what the current scanner reports, never an older report.
  const { rescan: _seen, ...record } = await rescanIfStale(registry.store, stored, registry.behaviour);
  const actor = `admin:${options.by}`;
  const refuse = async (reason: string): Promise<never> => {
    await registry.ledger.append({ actor, action: 'refuse', skill: refText, data: { reason } });
    throw new Error(reason);
  };
  // Approval pins exactly what was scanned: files changed since need a new scan first.
  const now = await registry.store.verify(record, record.hash);
  if (!now.ok)
    return refuse(`${refText}: ${now.reason}; run \`sandbot skill add\` again to rescan it, then approve`);
  const critical = record.findings.filter((f) => f.severity === 'critical');
  const acted = behaviourCritical(record.behaviour);
  if ((hasCritical(record.findings) || acted.length > 0) && !options.acceptFindings) {
    const which = [
      critical.length ? `${critical.length} critical finding(s) in its files` : '',
      acted.length ? `${acted.length} critical finding(s) in what its tools did` : '',
    ];
    return refuse(
      `${refText} has ${which.filter(Boolean).join(' and ')} (see \`sandbot skill show ${refText}\`); approving it anyway needs --accept-findings`,
    );
  }
  const declared = record.manifest.permissions.hosts;
  const hosts = options.hosts === 'all' ? declared : options.hosts.map((h) => Grant.parse(h));
  const undeclared = hosts.filter((h) => !declared.includes(h));
  if (undeclared.length) {
    return refuse(
      `${refText} does not declare ${undeclared.join(', ')}; only declared hosts (${declared.join(', ') || 'none'}) can be approved`,
    );
  }
  const approved: SkillRecord = {
    ...record,
    status: 'approved',
    approval: {
      by: options.by,
      at: new Date().toISOString(),
      hash: record.hash,
      hosts,
      acceptedFindings: critical.length + acted.length,
      ...(record.scannerVersion ? { scannerVersion: record.scannerVersion } : {}),
      ...(record.behaviour ? { behaviourVersion: record.behaviour.version } : {}),
    },
  };
  await registry.store.save(approved);
  await registry.ledger.append({
    actor,
    action: 'approve',
    skill: refText,
    data: {
      hash: record.hash,
      hosts,
      acceptedFindings: critical.length + acted.length,
      scannerVersion: record.scannerVersion,
      behaviourVersion: record.behaviour?.version,
    },
  });
  return approved;
}

export async function removeSkill(registry: Registry, refText: string, by: string): Promise<void> {
  const ref = parseSkillRef(refText);
  if (!ref?.version) throw new Error(`name the skill as NAME@VERSION (e.g. weather@1.0.0), not "${refText}"`);
  if (!(await registry.store.remove(ref.name, ref.version))) throw new Error(`no skill ${refText}`);
  await registry.ledger.append({ actor: `admin:${by}`, action: 'remove', skill: refText, data: {} });
}
