import type { DoctorCheck } from '../../contracts/doctor/check.js';
import { type DoctorOptions, runDoctor } from './checks.js';

/** The doctor's verdict as text for a terminal: one ✓/✗ line per check, the fix under each failure. */
export function formatDoctorReport(checks: readonly DoctorCheck[]): string {
  const lines: string[] = [];
  for (const check of checks) {
    lines.push(`${check.ok ? '✓' : '✗'} ${check.name}: ${check.detail}`);
    if (!check.ok && check.fix) lines.push(`    fix: ${check.fix}`);
  }
  const failed = checks.filter((c) => !c.ok).length;
  lines.push('');
  lines.push(failed === 0 ? 'All checks passed.' : `${failed} of ${checks.length} checks failed.`);
  return lines.join('\n');
}

export interface DoctorReport {
  ok: boolean;
  text: string;
  checks: DoctorCheck[];
}

export interface DoctorReportOptions extends DoctorOptions {
  /** Checks of the chat connections (their tokens), run after the others. */
  chatChecks?: () => Promise<DoctorCheck[]>;
}

/** Runs every check and formats the result; `ok` is false when any check failed. */
export async function doctorReport(options: DoctorReportOptions): Promise<DoctorReport> {
  const checks = [...(await runDoctor(options)), ...((await options.chatChecks?.()) ?? [])];
  return { ok: checks.every((c) => c.ok), text: formatDoctorReport(checks), checks };
}
