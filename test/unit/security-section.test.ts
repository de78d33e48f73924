import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/contracts/config/load.js';
import { securitySection } from '../../src/gateway/security-section.js';
import type { WorkerLayer } from '../../src/shared/stores/layer-report.js';

// `/readyz`'s security section: the gateway's config judged with each live worker's host report.

const now = 1_000_000;
const worker = (over: Partial<WorkerLayer>): WorkerLayer => ({
  layer: 'gvisor',
  detail: 'runsc',
  egress: 'tunnel',
  posture: { strongest: 'gvisor', engine: { version: '27.0.0', userns: true } },
  at: now,
  ...over,
});

describe('securitySection', () => {
  it('judges config alone when no worker reports, and counts the high ones', () => {
    const config = parseConfig({ SANDBOT_HTTP_HOST: '0.0.0.0', SANDBOX_WORKSPACE_MB: '0' });
    const section = securitySection(config, new Map(), { open: true }, now);
    expect(section.high).toBe(2);
    expect(section.findings.map((f) => f.setting)).toEqual([
      'SANDBOT_API_TOKEN',
      'SANDBOT_REDIS_URL',
      'SANDBOX_WORKSPACE_MB=0',
    ]);
  });

  it("takes each live worker's layer and engine, and tells a finding shared by workers once", () => {
    const config = parseConfig({ SANDBOT_API_TOKEN: 'x'.repeat(32), SANDBOX_LAYER: 'container' });
    const weak = { layer: 'container' as const, egress: 'bridge' as const };
    const old = { strongest: 'gvisor' as const, engine: { version: '24.0.7', userns: false } };
    const workers = new Map([
      ['a', worker({ ...weak, posture: old })],
      ['b', worker({ ...weak, posture: old })],
      ['gone', worker({ at: now - 60_000, posture: { engine: { version: '1.0.0', userns: false } } })],
    ]);
    const section = securitySection(config, workers, { open: false }, now);
    expect(section.findings.map((f) => [f.severity, f.setting])).toEqual([
      ['high', 'SANDBOX_LAYER=container'],
      ['high', 'engine 24.0.7'],
      ['medium', 'engine user namespaces'],
    ]);
  });
});
