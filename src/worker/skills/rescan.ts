import type { BehaviourRunner } from './behaviour/from-config.js';
import { type BehaviourFinding, type BehaviourReport, behaviourCritical } from './behaviour/report.js';
import { BEHAVIOUR_VERSION } from './behaviour/version.js';
import type { Finding } from './finding.js';
import { skillRef } from './manifest.js';
import { hasCritical, scanSkillFiles } from './scanner.js';
import { SCANNER_VERSION } from './scanner-version.js';
import type { SkillRecord, SkillStore } from './store.js';

/**
 * A skill scanned by an older scanner, or run by an older behavioural run, is scanned again over the
 * exact files that were approved when it is next resolved for a turn (static scan only: a turn starts
 * no vetting sandbox) or shown, listed or approved by an admin (both). New critical findings from
 * either withdraw an approval (the skill is pending again, with a note, until an admin approves it
 * with --accept-findings); with nothing new it stays approved and its status says it was rescanned
 * until an admin approves it again. `sandbot skill scan` does the same at any time (`rescanSkill`).
 */

const findingKey = (f: Pick<Finding, 'rule' | 'file' | 'line' | 'message'>) =>
  `${f.rule}|${f.file}|${f.line}|${f.message}`;
const behaviourKey = (f: BehaviourFinding) => `${f.rule}|${f.tool ?? ''}|${f.message}`;

/** New critical findings: critical now, not among the findings of the earlier scan. */
export function newCriticalFindings(before: readonly Finding[], now: readonly Finding[]): Finding[] {
  const known = new Set(before.map(findingKey));
  return now.filter((f) => f.severity === 'critical' && !known.has(findingKey(f)));
}

/** New critical behaviour: critical now, not seen by the earlier run. */
export function newCriticalBehaviour(
  before: BehaviourReport | undefined,
  now: BehaviourReport | undefined,
): BehaviourFinding[] {
  const known = new Set((before?.findings ?? []).map(behaviourKey));
  return behaviourCritical(now).filter((f) => !known.has(behaviourKey(f)));
}

/** Whether the record's behaviour report is missing, did not run, or is from another version of the run. */
export const behaviourStale = (record: SkillRecord) =>
  record.behaviour?.status !== 'ran' || record.behaviour.version !== BEHAVIOUR_VERSION;

export async function rescanIfStale(
  store: SkillStore,
  record: SkillRecord,
  behaviour?: BehaviourRunner,
): Promise<SkillRecord> {
  const staticStale = record.scannerVersion !== SCANNER_VERSION;
  const runAgain = behaviour !== undefined && behaviourStale(record);
  if (!staticStale && !runAgain) return record;
  return rescanSkill(store, record, { behaviour: runAgain ? behaviour : undefined, actor: 'scanner' });
}

/**
 * Scans the stored files again (static, and behavioural when a runner is given) and saves what changed.
 * A behavioural run that could not happen does not replace a report that did (the engine being away
 * is no finding about the skill); it is kept only where there was none.
 */
export async function rescanSkill(
  store: SkillStore,
  record: SkillRecord,
  options: { behaviour?: BehaviourRunner; actor: string; by?: string },
): Promise<SkillRecord> {
  // Only the scanned bytes are rescanned; changed files are the hash check's to refuse.
  const verification = await store.verify(record, record.hash);
  if (!verification.ok) return record;
  const findings = await scanSkillFiles(record.manifest, verification.files);
  let report = record.behaviour;
  if (options.behaviour) {
    const ran = await options.behaviour({ manifest: record.manifest, files: verification.files });
    if (ran.status === 'ran' || record.behaviour?.status !== 'ran') report = ran;
  }
  const fresh = newCriticalFindings(record.findings, findings).length;
  const freshBehaviour = newCriticalBehaviour(record.behaviour, report).length;
  const newCritical = fresh + freshBehaviour;
  const withdrawn = record.status === 'approved' && newCritical > 0;
  const rescan = {
    at: new Date().toISOString(),
    from: record.scannerVersion ?? 'unversioned',
    ...(report !== record.behaviour ? { behaviourFrom: record.behaviour?.version ?? 'none' } : {}),
    ...(options.by ? { by: options.by } : {}),
    newCritical,
    withdrawn,
  };
  const { approval: _withdrawn, ...unapproved } = record;
  const base = {
    findings,
    scannerVersion: SCANNER_VERSION,
    ...(report ? { behaviour: report } : {}),
    rescan,
  };
  const updated: SkillRecord = withdrawn
    ? { ...unapproved, ...base, status: 'pending' }
    : { ...record, ...base };
  await store.save(updated);
  await store.ledger.append({
    actor: options.actor,
    action: 'scan',
    skill: skillRef(record),
    data: {
      reason: options.by
        ? 'skill scan'
        : `rules changed (${rescan.from} → ${SCANNER_VERSION}; behaviour ${record.behaviour?.version ?? 'none'} → ${report?.version ?? 'none'})`,
      critical: findings.filter((f) => f.severity === 'critical').length,
      behaviourCritical: behaviourCritical(report).length,
      newCritical,
      ...(withdrawn ? { approvalWithdrawn: true } : {}),
      stillCritical: hasCritical(findings) || behaviourCritical(report).length > 0,
    },
  });
  return updated;
}
