import { formatBehaviour } from './behaviour/format.js';
import { behaviourCritical } from './behaviour/report.js';
import { skillRef } from './manifest.js';
import type { Finding } from './scanner.js';
import type { SkillRecord, Verification } from './store.js';

/** The words `sandbot skill add|show|ls` print: pure, from a record and what was seen on disk. */

export function formatFinding(
  f: Pick<Finding, 'severity' | 'rule' | 'file' | 'line' | 'excerpt' | 'message'>,
): string {
  const where = f.line === undefined ? f.file : `${f.file}:${f.line}`;
  const head = `  ${f.severity === 'critical' ? 'CRITICAL' : 'warning '} ${f.rule.padEnd(16)} ${where}: ${f.message}`;
  return f.excerpt ? `${head}\n      ${f.excerpt}` : head;
}

/** Status in words: pending, approved, or approved but changed since (refused until approved again). */
export function statusOf(record: SkillRecord, verification?: Verification): string {
  const rescan = record.rescan;
  if (record.status === 'pending') {
    if (!rescan?.newCritical) return 'pending';
    const what = `rescanned ${rescanWhy(rescan)} on ${rescan.at}, ${rescan.newCritical} new critical finding(s)`;
    return rescan.withdrawn === false ? `pending: ${what}` : `pending: ${what} withdrew its approval`;
  }
  if (verification && !verification.ok) return `REFUSED: ${verification.reason}; approve it again`;
  return rescan
    ? `approved (rescanned ${rescanWhy(rescan)} on ${rescan.at}: nothing new critical)`
    : 'approved';
}

function rescanWhy(rescan: NonNullable<SkillRecord['rescan']>): string {
  if (rescan.by) return `by ${rescan.by} (skill scan)`;
  const changed = rescan.behaviourFrom === undefined ? 'new scanner rules' : 'a new behavioural run';
  return `under ${changed}`;
}

const criticalCount = (record: SkillRecord) =>
  record.findings.filter((f) => f.severity === 'critical').length +
  behaviourCritical(record.behaviour).length;

export function formatReport(
  record: SkillRecord,
  options: { verification?: Verification; note?: string } = {},
): string {
  const ref = skillRef(record);
  const m = record.manifest;
  const bytes = record.files.reduce((sum, f) => sum + f.size, 0);
  const critical = record.findings.filter((f) => f.severity === 'critical').length;
  const warnings = record.findings.length - critical;
  const lines = [
    `${ref} — ${m.description}`,
    `  content sha256 ${record.hash} (${record.files.length} files, ${bytes} bytes)`,
    `  added ${record.addedAt} by ${record.addedBy} from ${record.source}`,
    `  tools: ${m.tools.length ? m.tools.map((t) => `${t.name} (${t.run})`).join(', ') : 'none'}`,
    `  asks for hosts: ${m.permissions.hosts.join(', ') || 'none'}; reads: ${m.permissions.files.join(', ') || 'nothing declared'}; ` +
      `time ${m.permissions.timeoutSeconds} s, memory ${m.permissions.memoryMb} MiB a call`,
    `  scan: ${critical} critical, ${warnings} warning${warnings === 1 ? '' : 's'}${record.findings.length ? ':' : ' — nothing found'}`,
    ...record.findings.map(formatFinding),
    ...formatBehaviour(record.behaviour),
  ];
  if (options.note) lines.push(`  note: ${options.note}`);
  lines.push(`  status: ${statusOf(record, options.verification)}`);
  if (record.approval) {
    const a = record.approval;
    const pinned = [a.scannerVersion, a.behaviourVersion].filter(Boolean).join(' + ');
    lines.push(
      `  approved by ${a.by} at ${a.at}; hosts granted: ${a.hosts.join(', ') || 'none'}${a.acceptedFindings ? `; ${a.acceptedFindings} critical finding(s) accepted` : ''}${pinned ? `; reports ${pinned}` : ''}`,
    );
  }
  if (record.status === 'pending') lines.push(`  next: ${approveHint(record)}`);
  return lines.join('\n');
}

export function approveHint(record: SkillRecord): string {
  const ref = skillRef(record);
  const hosts = record.manifest.permissions.hosts;
  const critical = criticalCount(record) > 0;
  const command = `sandbot skill approve ${ref}${hosts.length ? ` --hosts ${hosts.join(',')}` : ''}`;
  return critical
    ? `review the critical findings; to approve it anyway: \`${command} --accept-findings\``
    : `\`${command}\` (an admin, after reading this report)`;
}

/** One line per record for `sandbot skill ls`. */
export function formatList(rows: { record: SkillRecord; verification?: Verification }[]): string {
  if (rows.length === 0) return 'no skills yet: `sandbot skill add PATH` vets one';
  return rows
    .map(({ record, verification }) => {
      const critical = criticalCount(record);
      const status = statusOf(record, verification);
      return `${skillRef(record).padEnd(28)} ${status.padEnd(10)} sha256 ${record.hash.slice(0, 12)}  ${record.manifest.tools.length} tool(s)  ${critical} critical  ${record.manifest.description.slice(0, 60)}`;
    })
    .join('\n');
}
