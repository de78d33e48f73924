import { describe, expect, it } from 'vitest';
import { type WorkerLayer, workerReadiness } from '../../src/shared/stores/layer-report.js';

// The gateway's /readyz shows the engine, Ollama and layer checks as the live workers report them.
describe('workerReadiness', () => {
  const at = 1_000_000;
  const report = (checks: WorkerLayer['checks'], when = at): WorkerLayer => ({
    layer: 'container',
    detail: 'ran',
    checks,
    at: when,
  });
  const up = {
    docker: { ok: true, detail: 'unix:///var/run/docker.sock' },
    ollama: { ok: true, detail: 'Ollama 0.5.1' },
  };

  it('is not ready without a live worker, and says how to start one', () => {
    const stale = new Map([['w-1', report(up, at - 60_000)]]);
    for (const workers of [new Map<string, WorkerLayer>(), stale]) {
      const checks = workerReadiness('container', workers, at);
      expect(checks.docker).toEqual({ ok: false, detail: expect.stringContaining('no worker has reported') });
      expect(checks.ollama.ok).toBe(false);
      expect(checks.layer).toEqual({
        ok: true,
        detail: 'configured container; no worker has reported a layer yet',
      });
    }
  });

  it('takes a check as ok when one live worker’s last run of it was, else names the failure', () => {
    const down = { ok: false, detail: 'connect ECONNREFUSED 127.0.0.1:1 (ECONNREFUSED)' };
    const one = new Map([['w-1', report({ ...up, docker: down })]]);
    expect(workerReadiness('container', one, at)).toMatchObject({ docker: down, ollama: up.ollama });
    one.set('w-2', report(up));
    expect(workerReadiness('container', one, at).docker).toEqual(up.docker);
  });

  it('says so when live workers report no such check', () => {
    const checks = workerReadiness('container', new Map([['w-1', report(undefined)]]), at);
    expect(checks.docker).toEqual({ ok: false, detail: 'no live worker reports a docker check' });
  });

  it('shows the disk caps the live workers report, an uncapped one first, and is never what fails', () => {
    const capped = { ok: true, detail: 'each /workspace capped at 2048 MiB, each /session at 64 MiB' };
    const uncapped = { ok: true, detail: 'WEAKNESS: /workspace and /session are uncapped' };
    const workers = new Map([
      ['w-1', report({ ...up, disk: capped })],
      ['w-2', report({ ...up, disk: uncapped })],
    ]);
    expect(workerReadiness('container', workers, at).disk).toEqual({
      ok: true,
      detail: `${uncapped.detail}; ${capped.detail}`,
    });
    expect(workerReadiness('container', new Map(), at).disk).toEqual({
      ok: true,
      detail: 'no live worker reports its disk caps',
    });
  });
});
