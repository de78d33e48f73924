import type { Config } from '../contracts/config/schema.js';
import { bySeverity, type Finding, type PostureFacts, postureFindings } from '../shared/posture/posture.js';
import { probeRedisPosture } from '../shared/posture/redis-posture.js';
import type { WorkerLayer } from '../shared/stores/layer-report.js';

/**
 * `/readyz`'s security section, for the console: the posture report (shared/posture/posture.ts) from
 * this gateway's config, its Redis, and what each live worker reported of its host (the gateway runs
 * no engine client). Informational: it never makes the gateway "not ready".
 */
export interface SecuritySection {
  high: number;
  findings: Finding[];
}

const STALE_MS = 45_000;

/** Every live worker's host judged with the config, the same finding told once. */
export function securitySection(
  config: Config,
  workers: ReadonlyMap<string, WorkerLayer>,
  redis: PostureFacts['redis'],
  now: number,
): SecuritySection {
  const live = [...workers.values()].filter((w) => now - w.at <= STALE_MS);
  const hosts: PostureFacts[] = live.map((w) => ({
    layer: {
      inForce: w.layer,
      ...(w.posture?.strongest ? { strongest: w.posture.strongest } : {}),
      ...(w.egress ? { egress: w.egress } : {}),
    },
    ...(w.posture?.engine ? { engine: w.posture.engine } : {}),
  }));
  const seen = new Map<string, Finding>();
  for (const host of hosts.length > 0 ? hosts : [{}]) {
    for (const finding of postureFindings(config, { ...host, ...(redis ? { redis } : {}) })) {
      seen.set(`${finding.setting}\n${finding.what}`, finding);
    }
  }
  const findings = bySeverity([...seen.values()]);
  return { high: findings.filter((f) => f.severity === 'high').length, findings };
}

/** Redis's posture, asked at most once a minute (a probe opens two connections). */
export function redisPostureCache(url: string, maxAgeMs = 60_000) {
  let last: { at: number; value: PostureFacts['redis'] } | undefined;
  return async (timeoutMs: number): Promise<PostureFacts['redis']> => {
    if (last && Date.now() - last.at < maxAgeMs) return last.value;
    const value = await probeRedisPosture(url, timeoutMs);
    last = { at: Date.now(), value };
    return value;
  };
}
