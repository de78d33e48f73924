import { describe, expect, it } from 'vitest';
import { judgeDiskCaps, localEngine } from '../../sandbox/host/driver/disk-cap.js';
import { checkDiskCaps } from '../../src/cli/doctor/checks.js';
import { parseConfig } from '../../src/contracts/config/load.js';

const config = (env: Record<string, string> = {}) => parseConfig(env);

describe('disk caps', () => {
  it('are on by default: 2 GiB per /workspace, 64 MiB per /session', () => {
    expect(config()).toMatchObject({ SANDBOX_WORKSPACE_MB: 2048, SANDBOX_SESSION_MB: 64 });
    expect(judgeDiskCaps(config(), 0)).toEqual({
      ok: true,
      capped: true,
      detail:
        'each /workspace capped at 2048 MiB, each /session at 64 MiB (loop-mounted images under SANDBOX_DISK_DIR)',
    });
  });

  it('refuse a worker that cannot make them, saying how to fix it', () => {
    const notRoot = judgeDiskCaps(config(), 1000);
    expect(notRoot).toMatchObject({ ok: false, reason: expect.stringContaining('uid 1000') });
    expect(notRoot.ok === false && notRoot.fix).toMatch(
      /root.*SANDBOX_LAYER=microvm.*SANDBOX_WORKSPACE_MB=0/,
    );
    const remote = judgeDiskCaps(config({ DOCKER_HOST: 'tcp://10.0.0.5:2376' }), 0);
    expect(remote).toMatchObject({ ok: false, reason: expect.stringContaining('another machine') });
  });

  it('are made in the micro-VM whoever runs the worker', () => {
    expect(judgeDiskCaps(config({ SANDBOX_LAYER: 'microvm' }), 1000)).toMatchObject({
      ok: true,
      capped: true,
    });
  });

  it('off (0, said explicitly) is allowed but reported as a weakness', () => {
    const off = judgeDiskCaps(config({ SANDBOX_WORKSPACE_MB: '0' }), 1000);
    expect(off).toMatchObject({
      ok: true,
      capped: false,
      detail: expect.stringMatching(/^WEAKNESS: .*uncapped/),
    });
    expect(checkDiskCaps(config({ SANDBOX_WORKSPACE_MB: '0' }), 0)).toMatchObject({
      name: 'Disk caps',
      ok: false,
      detail: expect.stringMatching(/^WEAKNESS/),
      fix: expect.stringContaining('SANDBOX_WORKSPACE_MB'),
    });
    expect(checkDiskCaps(config(), 0)).toMatchObject({ ok: true });
    expect(checkDiskCaps(config(), 1000)).toMatchObject({ ok: false, fix: expect.any(String) });
  });

  it('count an engine behind a local socket as on this host', () => {
    expect(localEngine(undefined)).toBe(true);
    expect(localEngine('unix:///var/run/docker.sock')).toBe(true);
    expect(localEngine('tcp://127.0.0.1:2375')).toBe(false);
    expect(localEngine('ssh://me@host')).toBe(false);
  });
});
