import type Docker from 'dockerode';
import type { Config } from '../../contracts/config/schema.js';
import { type Finding, hasHigh, postureFindings } from '../../shared/posture/posture.js';
import { probeRedisPosture } from '../../shared/posture/redis-posture.js';
import { probeHostPosture } from '../../worker/posture-probe.js';

/** `sandbot doctor --security`: the posture report, one line per weakened setting and its fix under it. */
export function formatPosture(findings: readonly Finding[], notes: readonly string[] = []): string {
  const lines = ['Security posture: settings weaker than their default or than this host allows', ''];
  for (const f of findings) {
    lines.push(`${f.severity.padEnd(6)} ${f.setting}: ${f.what}`);
    lines.push(`       fix: ${f.fix}`);
  }
  if (findings.length === 0) lines.push('Nothing weakened found.');
  for (const note of notes) lines.push(`note: ${note}`);
  const count = (s: Finding['severity']) => findings.filter((f) => f.severity === s).length;
  lines.push('');
  lines.push(`${count('high')} high, ${count('medium')} medium, ${count('low')} low.`);
  return lines.join('\n');
}

export interface PostureReport {
  ok: boolean;
  text: string;
  findings: Finding[];
}

/** Gathers the facts (engine, layers, Redis) and judges them; `ok` is false when any finding is high. */
export async function securityReport(config: Config, docker: Docker): Promise<PostureReport> {
  const [host, redis] = await Promise.all([
    probeHostPosture(config, docker),
    probeRedisPosture(config.SANDBOT_REDIS_URL),
  ]);
  const findings = postureFindings(config, { ...host, ...(redis ? { redis } : {}) });
  const notes = [
    ...(host.engine
      ? []
      : ['the engine did not answer: its version, user namespaces and the layers are not judged']),
    ...(redis ? [] : ['Redis did not answer: its password and addresses are not judged']),
  ];
  return { ok: !hasHigh(findings), text: formatPosture(findings, notes), findings };
}
