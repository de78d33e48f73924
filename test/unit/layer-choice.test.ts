import { describe, expect, it } from 'vitest';
import { namedLayer } from '../../sandbox/host/layers/layer.js';
import { chooseLayer, describeChoice, type LayerProbe } from '../../sandbox/host/layers/layer-choice.js';
import { hardwareVirtualization } from '../../sandbox/host/vm/accel.js';
import { parseConfig } from '../../src/contracts/config/load.js';

const HARDWARE = { ok: true, detail: 'hardware virtualization (KVM)' };
const NO_HARDWARE = { ok: false, detail: '/dev/kvm exists but the CPU shows no vmx/svm' };
const auto = (found: Partial<Extract<LayerProbe, { setting: 'auto' }>> = {}): LayerProbe => ({
  setting: 'auto',
  hardware: NO_HARDWARE,
  guestBuilt: false,
  runtimes: ['runc'],
  ...found,
});

describe('SANDBOX_LAYER', () => {
  it('is auto unless set', () => {
    expect(parseConfig({}).SANDBOX_LAYER).toBe('auto');
    expect(parseConfig({ SANDBOX_LAYER: 'container' }).SANDBOX_LAYER).toBe('container');
  });

  it('must be resolved before it is planned with', () => {
    expect(() => namedLayer(parseConfig({}))).toThrow(/SANDBOX_LAYER=auto must be resolved/);
    expect(namedLayer(parseConfig({ SANDBOX_LAYER: 'gvisor' })).SANDBOX_LAYER).toBe('gvisor');
  });
});

describe('chooseLayer', () => {
  it('takes a named layer as it is, whatever the host offers (no fallback)', () => {
    for (const layer of ['container', 'gvisor', 'microvm'] as const) {
      expect(chooseLayer({ setting: layer })).toEqual({
        ok: true,
        layer,
        auto: false,
        reason: `SANDBOX_LAYER=${layer}, as set`,
      });
    }
  });

  // Every combination of hardware virtualization, a built guest and a registered runsc.
  const cases: [hardware: boolean, built: boolean, runsc: boolean, layer: string][] = [
    [true, true, true, 'microvm'],
    [true, true, false, 'microvm'],
    [true, false, true, 'gvisor'],
    [true, false, false, 'container'],
    [false, true, true, 'gvisor'],
    [false, true, false, 'container'],
    [false, false, true, 'gvisor'],
    [false, false, false, 'container'],
  ];
  it.each(cases)('auto: hardware %s, guest built %s, runsc registered %s → %s', (hw, built, runsc, layer) => {
    const choice = chooseLayer(
      auto({
        hardware: hw ? HARDWARE : NO_HARDWARE,
        guestBuilt: built,
        runtimes: runsc ? ['runc', 'runsc'] : ['runc'],
      }),
    );
    expect(choice).toMatchObject({ ok: true, layer, auto: true });
  });

  it('auto says why: what it found, and what stronger layer it did not take', () => {
    expect(chooseLayer(auto({ hardware: HARDWARE, guestBuilt: true }))).toMatchObject({
      reason: 'hardware virtualization (KVM) and the micro-VM guest is built',
    });
    const gvisor = chooseLayer(auto({ runtimes: ['runc', 'runsc'] }));
    expect(gvisor).toMatchObject({
      reason:
        'runsc (gVisor) is registered with the engine; no micro-VM: no hardware virtualization: ' +
        '/dev/kvm exists but the CPU shows no vmx/svm',
    });
    expect(describeChoice(gvisor)).toMatch(
      /^gvisor, chosen by SANDBOX_LAYER=auto: runsc \(gVisor\) is registered/,
    );
    expect(chooseLayer(auto({ hardware: HARDWARE }))).toMatchObject({
      layer: 'container',
      reason:
        'no micro-VM (its guest is not built (`sandbot vm build`)) and no gVisor (the engine has no runtime ' +
        '"runsc" (`bash scripts/setup.sh` installs and registers runsc))',
    });
  });

  it('auto honours SANDBOX_RUNTIME: another gVisor runtime by name; a non-gVisor one means container', () => {
    const everything = {
      hardware: HARDWARE,
      guestBuilt: true,
      runtimes: ['runc', 'runsc', 'runsc-kvm', 'crun'],
    };
    expect(chooseLayer(auto({ ...everything, runtime: 'runc' }))).toMatchObject({ layer: 'microvm' });
    expect(chooseLayer(auto({ ...everything, runtime: 'runsc-kvm' }))).toMatchObject({
      layer: 'gvisor',
      reason: expect.stringMatching(/^runsc-kvm \(gVisor\) is registered.*micro-VM's engine has runc only/),
    });
    expect(chooseLayer(auto({ runtimes: ['runc', 'runsc'], runtime: 'runsc-kvm' }))).toMatchObject({
      layer: 'container',
    });
    expect(chooseLayer(auto({ ...everything, runtime: 'crun' }))).toMatchObject({
      layer: 'container',
      reason: expect.stringContaining('no gVisor (SANDBOX_RUNTIME=crun is not gVisor)'),
    });
  });

  it('auto cannot choose below the micro-VM when the engine cannot be asked', () => {
    const runtimes = { error: 'connect ENOENT /var/run/docker.sock' };
    expect(chooseLayer(auto({ runtimes }))).toMatchObject({
      ok: false,
      reason: expect.stringContaining('the engine cannot be asked which runtimes it has: connect ENOENT'),
    });
    expect(chooseLayer(auto({ runtimes, hardware: HARDWARE, guestBuilt: true }))).toMatchObject({
      layer: 'microvm',
    });
  });
});

describe('hardwareVirtualization', () => {
  const WITH_VMX = 'flags\t\t: fpu vme de pse vmx sse\n';
  const WITHOUT = 'flags\t\t: fpu vme de pse sse\n';
  it('is KVM with vmx/svm only; emulation, a missing /dev/kvm or a PVM /dev/kvm do not count', () => {
    expect(hardwareVirtualization('auto', true, WITH_VMX)).toEqual(HARDWARE);
    expect(hardwareVirtualization('kvm', true, WITH_VMX).ok).toBe(true);
    expect(hardwareVirtualization('auto', true, WITHOUT)).toEqual(NO_HARDWARE);
    expect(hardwareVirtualization('kvm', true, WITHOUT).ok).toBe(false);
    expect(hardwareVirtualization('auto', false, WITH_VMX)).toEqual({
      ok: false,
      detail: 'no /dev/kvm on this host',
    });
    expect(hardwareVirtualization('tcg', true, WITH_VMX)).toMatchObject({
      ok: false,
      detail: /SANDBOT_VM_ACCEL=tcg/,
    });
  });
});
