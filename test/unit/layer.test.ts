import { describe, expect, it } from 'vitest';
import { gvisorSeccompOpt, gvisorSeccompProfile } from '../../sandbox/host/layers/gvisor-seccomp.js';
import {
  describePlan,
  GVISOR_MEMORY_OVERHEAD_MB,
  GVISOR_MIN_PIDS,
  GVISOR_STATX_SHIM,
  layerPlan,
  namedLayer,
  registrationHint,
} from '../../sandbox/host/layers/layer.js';
import {
  demuxLogs,
  judgeProbe,
  judgeRegistration,
  networkMode,
  probeSpec,
} from '../../sandbox/host/layers/layer-check.js';
import { parseConfig } from '../../src/contracts/config/load.js';
import { layerReadiness, type WorkerLayer } from '../../src/shared/stores/layer-report.js';

// SANDBOX_LAYER=auto is resolved before planning (layer-choice.test.ts); here the layer is named.
const plan = (settings: Record<string, string>) =>
  layerPlan(namedLayer(parseConfig({ SANDBOX_LAYER: 'container', ...settings })));

describe('layerPlan', () => {
  it('container: the engine’s default runtime and the configured limits, nothing added', () => {
    expect(plan({})).toEqual({
      layer: 'container',
      gvisor: false,
      engine: 'local',
      memoryMb: 512,
      pidsLimit: 256,
      env: [],
      securityOpt: [],
    });
  });

  it('container with a named runtime runs it', () => {
    expect(plan({ SANDBOX_RUNTIME: 'crun' })).toMatchObject({
      layer: 'container',
      runtime: 'crun',
      gvisor: false,
    });
  });

  it('gvisor: runsc; the agent’s process limit inside gVisor, room for gVisor’s own tasks and memory', () => {
    expect(plan({ SANDBOX_LAYER: 'gvisor', SANDBOX_PIDS: '128', SANDBOX_MEMORY_MB: '256' })).toEqual({
      layer: 'gvisor',
      runtime: 'runsc',
      gvisor: true,
      engine: 'local',
      memoryMb: 256 + GVISOR_MEMORY_OVERHEAD_MB,
      pidsLimit: 128 + 40 * 128,
      nproc: 128,
      env: [`LD_PRELOAD=${GVISOR_STATX_SHIM}`],
      securityOpt: [gvisorSeccompOpt()],
    });
  });

  it('gvisor never gives the host fewer than 1024 tasks, and takes another gVisor runtime by name', () => {
    expect(plan({ SANDBOX_LAYER: 'gvisor', SANDBOX_PIDS: '16', SANDBOX_RUNTIME: 'runsc-kvm' })).toMatchObject(
      {
        runtime: 'runsc-kvm',
        pidsLimit: GVISOR_MIN_PIDS,
        nproc: 16,
      },
    );
  });

  it('a runsc runtime named under the container layer is the gVisor layer all the same', () => {
    expect(plan({ SANDBOX_RUNTIME: 'runsc' })).toMatchObject({ layer: 'gvisor', gvisor: true, nproc: 256 });
  });

  it('microvm: the guest’s engine, with the runtime named for inside it', () => {
    expect(plan({ SANDBOX_LAYER: 'microvm' })).toMatchObject({
      layer: 'microvm',
      engine: 'guest',
      gvisor: false,
    });
    expect(plan({ SANDBOX_LAYER: 'microvm', SANDBOX_RUNTIME: 'crun' }).runtime).toBe('crun');
  });

  it('names the layer in one line', () => {
    expect(describePlan(plan({}))).toBe("container: every sandbox under the engine's default runtime (runc)");
    expect(describePlan(plan({ SANDBOX_LAYER: 'gvisor' }))).toBe(
      "gvisor: every sandbox under runsc (gVisor's user-space kernel)",
    );
  });

  it('explains how to register gVisor with the engine', () => {
    const hint = registrationHint('runsc');
    expect(hint).toContain('apt-get install runsc');
    expect(hint).toContain('/etc/docker/daemon.json');
    expect(hint).toContain('"runtimeArgs": ["--network=none", "--oci-seccomp"]');
    expect(registrationHint('kata')).toContain('"runtimes": {"kata"');
  });
});

describe('gvisorSeccompProfile', () => {
  it('allows by default and refuses namespaces, mounts, keyrings, BPF and tracing', () => {
    const profile = gvisorSeccompProfile();
    expect(profile.defaultAction).toBe('SCMP_ACT_ALLOW');
    const refused = profile.syscalls
      .filter((r) => r.action === 'SCMP_ACT_ERRNO' && !r.args)
      .flatMap((r) => r.names);
    for (const call of ['unshare', 'setns', 'mount', 'keyctl', 'bpf', 'ptrace'])
      expect(refused).toContain(call);
  });

  it('answers clone3 with ENOSYS (TRACE without a tracer) and refuses clone with any namespace flag', () => {
    const profile = gvisorSeccompProfile();
    expect(profile.syscalls).toContainEqual({ names: ['clone3'], action: 'SCMP_ACT_TRACE' });
    let flags = 0;
    for (const rule of profile.syscalls.filter((r) => r.names.includes('clone'))) {
      const arg = rule.args?.[0];
      expect(arg?.op).toBe('SCMP_CMP_MASKED_EQ');
      expect(arg?.value).toBe(arg?.valueTwo);
      flags |= arg?.value ?? 0;
    }
    expect(flags).toBe(0x7e02_0000);
  });
});

describe('judgeRegistration', () => {
  const gvisor = plan({ SANDBOX_LAYER: 'gvisor' });

  it('refuses a runtime the engine does not have, listing what it has', () => {
    const verdict = judgeRegistration(gvisor, { runc: { path: 'runc' } });
    expect(verdict).toMatchObject({ ok: false, reason: 'the engine has no runtime "runsc" (it has: runc)' });
    expect(!verdict.ok && verdict.fix).toContain('daemon.json');
  });

  it('accepts runsc with --network=none, its grants served through the protocol tunnel', () => {
    const verdict = judgeRegistration(gvisor, {
      runsc: { path: '/usr/bin/runsc', runtimeArgs: ['--network=none'] },
    });
    expect(verdict).toEqual({ ok: true, args: ['--network=none'], egress: 'tunnel' });
  });

  it('accepts runsc on its own network stack, its grants served through the egress network', () => {
    const verdict = judgeRegistration(gvisor, { runsc: { path: '/usr/bin/runsc' } });
    expect(verdict).toEqual({ ok: true, args: [], egress: 'bridge' });
  });

  it('refuses runsc in host network mode, which hands sockets to the host kernel', () => {
    for (const runtimeArgs of [['--network=host'], ['--network', 'host'], ['-network=host']]) {
      const verdict = judgeRegistration(gvisor, { runsc: { path: '/usr/bin/runsc', runtimeArgs } });
      expect(verdict).toMatchObject({ ok: false, reason: expect.stringContaining('--network=host') });
    }
  });

  it('needs nothing registered for the engine’s default runtime', () => {
    expect(judgeRegistration(plan({}), {})).toEqual({ ok: true, args: [], egress: 'bridge' });
  });

  it('reads runsc’s network flag the way runsc does (last one wins, sandbox by default)', () => {
    expect(networkMode([])).toBe('sandbox');
    expect(networkMode(['--platform=ptrace', '--network=none'])).toBe('none');
    expect(networkMode(['--network=none', '--network', 'sandbox'])).toBe('sandbox');
  });
});

describe('judgeProbe', () => {
  const gvisor = plan({ SANDBOX_LAYER: 'gvisor' });
  const good = 'node-ok\nkernel: 4.4.0\n[    0.000000] Starting gVisor...\n';

  it('passes a gVisor probe that listed files, ran node and saw gVisor', () => {
    expect(judgeProbe(gvisor, { exitCode: 0, output: good })).toBeUndefined();
  });

  it('refuses a "gVisor" runtime that ran the container on the host kernel', () => {
    const reason = judgeProbe(gvisor, { exitCode: 0, output: 'node-ok\nkernel: 6.1.0-amd64\n' });
    expect(reason).toContain('not under gVisor');
  });

  it('refuses a runtime that lets the agent make a user namespace (seccomp profile not applied)', () => {
    const reason = judgeProbe(gvisor, { exitCode: 5, output: 'probe: a user namespace could be made' });
    expect(reason).toContain('--oci-seccomp');
  });

  it('says what to do when ls fails under an old gVisor', () => {
    const reason = judgeProbe(gvisor, {
      exitCode: 3,
      output: "ls: cannot access '/': Invalid argument\nprobe: ls failed",
    });
    expect(reason).toContain('statx');
    expect(reason).toContain('sandbot image build');
  });

  it('refuses when node cannot start or the container fails', () => {
    expect(judgeProbe(plan({}), { exitCode: 4, output: 'uv_thread_create' })).toContain('exit 4');
    expect(judgeProbe(plan({}), { exitCode: 0, output: 'kernel: 6.1\n' })).toContain('node did not run');
    expect(judgeProbe(plan({}), { exitCode: 0, output: 'node-ok\nkernel: 6.1\n' })).toBeUndefined();
  });
});

describe('probeSpec', () => {
  it('is a sandbox without volumes or network: read-only, uid 1000, no capabilities, the layer’s runtime', () => {
    const spec = probeSpec(plan({ SANDBOX_LAYER: 'gvisor' }), 'img:1', 'inst');
    expect(spec).toMatchObject({
      Image: 'img:1',
      User: '1000:1000',
      Env: [`LD_PRELOAD=${GVISOR_STATX_SHIM}`],
      Labels: { 'sandbot.instance': 'inst', 'sandbot.kind': 'layer-probe' },
      HostConfig: {
        NetworkMode: 'none',
        ReadonlyRootfs: true,
        CapDrop: ['ALL'],
        SecurityOpt: ['no-new-privileges', gvisorSeccompOpt()],
        PidsLimit: 128 + 40 * 256,
        Ulimits: [{ Name: 'nproc', Soft: 256, Hard: 256 }],
        Runtime: 'runsc',
      },
    });
    expect(spec.HostConfig?.Mounts).toBeUndefined();
    expect(probeSpec(plan({}), 'img:1', 'inst').HostConfig?.Runtime).toBeUndefined();
  });
});

describe('demuxLogs', () => {
  it('joins the payloads of stdout and stderr frames', () => {
    const frame = (stream: number, text: string) => {
      const body = Buffer.from(text);
      const header = Buffer.alloc(8);
      header[0] = stream;
      header.writeUInt32BE(body.length, 4);
      return Buffer.concat([header, body]);
    };
    expect(demuxLogs(Buffer.concat([frame(1, 'node-ok\n'), frame(2, 'warn\n'), frame(1, 'end')]))).toBe(
      'node-ok\nwarn\nend',
    );
  });
});

describe('layerReadiness', () => {
  const at = 1_000_000;
  const worker = (layer: WorkerLayer['layer'], extra: Partial<WorkerLayer> = {}): WorkerLayer => ({
    layer,
    detail: 'ran',
    at,
    ...extra,
  });

  it('names the layers of live workers and counts them', () => {
    const workers = new Map([
      ['w-1', worker('gvisor', { runtime: 'runsc', egress: 'tunnel' })],
      ['w-2', worker('gvisor', { runtime: 'runsc', egress: 'tunnel' })],
      ['w-3', worker('container')],
    ]);
    expect(layerReadiness('container', workers, at + 1000)).toEqual({
      ok: true,
      detail: 'gvisor (runsc), egress tunnelled on 2 workers; container on 1 worker',
    });
  });

  it('leaves out workers that stopped reporting, and says so when none is left', () => {
    const workers = new Map([['w-1', worker('gvisor', { runtime: 'runsc' })]]);
    expect(layerReadiness('gvisor: …', workers, at + 60_000)).toEqual({
      ok: true,
      detail: 'configured gvisor: …; no worker has reported a layer yet',
    });
  });

  it('is not ready when no live worker’s sandbox engine answers, and says which did not', () => {
    const down = { ok: false, detail: 'connect ECONNREFUSED 127.0.0.1:40123' };
    const workers = new Map([
      ['w-1', worker('microvm', { egress: 'tunnel', engine: down })],
      ['w-2', worker('microvm', { egress: 'tunnel', engine: down })],
    ]);
    expect(layerReadiness('microvm', workers, at)).toEqual({
      ok: false,
      detail:
        'microvm, egress tunnelled, its engine not answering (connect ECONNREFUSED 127.0.0.1:40123) on 2 workers',
    });
    workers.set('w-3', worker('microvm', { egress: 'tunnel', engine: { ok: true, detail: 'answering' } }));
    expect(layerReadiness('microvm', workers, at).ok).toBe(true);
  });

  it('says why SANDBOX_LAYER=auto chose a worker’s layer; a named layer needs no reason', () => {
    const workers = new Map([
      [
        'w-1',
        worker('gvisor', { runtime: 'runsc', setting: 'auto', reason: 'runsc (gVisor) is registered' }),
      ],
      ['w-2', worker('container', { setting: 'container', reason: 'SANDBOX_LAYER=container, as set' })],
    ]);
    expect(layerReadiness('SANDBOX_LAYER=auto', workers, at).detail).toBe(
      'gvisor (runsc), chosen by SANDBOX_LAYER=auto: runsc (gVisor) is registered on 1 worker; container on 1 worker',
    );
  });
});
