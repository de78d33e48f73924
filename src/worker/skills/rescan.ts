import type { Finding } from './finding.js';
import { SkillLedger } from './ledger.js';
import { skillRef } from './manifest.js';
import { hasCritical, scanSkillFiles } from './scanner.js';
import { SCANNER_VERSION } from './scanner-version.js';
import type { SkillRecord, SkillStore } from './store.js';

/**
 * A skill scanned by an older scanner is scanned again, over the exact files that were approved, when
 * it is next resolved for a turn or listed by an admin. New critical findings withdraw an approval
 * (the skill is pending again, with a note, until an admin approves it with --accept-findings); with
 * nothing new it stays approved and its status says it was rescanned until an admin approves again.
 */

const findingKey = (f: Pick<Finding, 'rule' | 'file' | 'line' | 'message'>) =>
  `${f.rule}|${f.file}|${f.line}|${f.message}`;

/** New critical findings: critical now, not among the findings of the earlier scan. */
export function newCriticalFindings(before: readonly Finding[], now: readonly Finding[]): Finding[] {
  const known = new Set(before.map(findingKey));
  return now.filter((f) => f.severity === 'critical' && !known.has(findingKey(f)));
}

export async function rescanIfStale(store: SkillStore, record: SkillRecord): Promise<SkillRecord> {
  if (record.scannerVersion === SCANNER_VERSION) return record;
  // Only the scanned bytes are rescanned; changed files are the hash check's to refuse.
  const verification = await store.verify(record, record.hash);
  if (!verification.ok) return record;
  const findings = await scanSkillFiles(record.manifest, verification.files);
  const fresh = newCriticalFindings(record.findings, findings);
  const withdrawn = record.status === 'approved' && fresh.length > 0;
  const rescan = {
    at: new Date().toISOString(),
    from: record.scannerVersion ?? 'unversioned',
    newCritical: fresh.length,
  };
  const { approval: _withdrawn, ...unapproved } = record;
  const updated: SkillRecord = withdrawn
    ? { ...unapproved, status: 'pending', findings, scannerVersion: SCANNER_VERSION, rescan }
    : { ...record, findings, scannerVersion: SCANNER_VERSION, rescan };
  await store.save(updated);
  await new SkillLedger(store.root).append({
    actor: 'scanner',
    action: 'scan',
    skill: skillRef(record),
    data: {
      reason: `scanner rules changed (${rescan.from} → ${SCANNER_VERSION})`,
      critical: findings.filter((f) => f.severity === 'critical').length,
      newCritical: fresh.length,
      ...(withdrawn ? { approvalWithdrawn: true } : {}),
      stillCritical: hasCritical(findings),
    },
  });
  return updated;
}
