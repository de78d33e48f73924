import { type Check, type Probe, runProbe } from '../shared/probe.js';
import type { HealthReport } from './http-server.js';

/**
 * What `/readyz` reports: every probe at once, each under its own time limit, so one dead dependency
 * neither hangs the answer nor hides the others. Ready only when all are.
 */
export async function checkReadiness(
  probes: Record<string, Probe>,
  extra: Record<string, Check>,
  timeoutMs: number,
): Promise<HealthReport> {
  const entries = await Promise.all(
    Object.entries(probes).map(async ([name, probe]) => [name, await runProbe(probe, timeoutMs)] as const),
  );
  const checks: Record<string, Check> = { ...Object.fromEntries(entries), ...extra };
  return { ok: Object.values(checks).every((c) => c.ok), checks };
}
