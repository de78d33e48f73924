/** How QEMU runs the guest: hardware virtualization, or software emulation (TCG). */
export type Accel = 'kvm' | 'tcg';

export interface AccelChoice {
  accel: Accel;
  /** One sentence for the operator: what was chosen and why, with the cost of emulation said plainly. */
  reason: string;
}

/** Whether this CPU offers hardware virtualization (Intel VT-x "vmx" or AMD-V "svm"). */
export function cpuHasVirtualization(cpuinfo: string): boolean {
  return /^flags\s*:.*\b(vmx|svm)\b/m.test(cpuinfo);
}

const TCG_COST =
  'expect a boot of 15–35 s and 15–25 s per new sandbox, tool calls in tenths of a second (hardware KVM: a few seconds and under a second)';

/**
 * auto takes KVM only where /dev/kvm exists *and* the CPU has vmx/svm: some hosts expose a /dev/kvm
 * without hardware virtualization (e.g. PVM), where a stock guest kernel barely boots.
 */
export function chooseAccel(setting: 'auto' | Accel, kvmDevice: boolean, cpuinfo: string): AccelChoice {
  const hardware = cpuHasVirtualization(cpuinfo);
  if (setting === 'kvm') {
    if (!kvmDevice)
      throw new Error('SANDBOT_VM_ACCEL=kvm but /dev/kvm does not exist: load kvm_intel/kvm_amd or use tcg');
    return { accel: 'kvm', reason: 'hardware virtualization (KVM), as SANDBOT_VM_ACCEL asks' };
  }
  if (setting === 'tcg') {
    return { accel: 'tcg', reason: `software emulation (TCG), as SANDBOT_VM_ACCEL asks: ${TCG_COST}` };
  }
  if (kvmDevice && hardware) return { accel: 'kvm', reason: 'hardware virtualization (KVM)' };
  const why = kvmDevice
    ? '/dev/kvm exists but the CPU shows no vmx/svm (not hardware virtualization)'
    : 'no /dev/kvm on this host';
  return { accel: 'tcg', reason: `software emulation (TCG), since ${why}: ${TCG_COST}` };
}

/**
 * Whether the micro-VM would run on hardware virtualization here (what SANDBOX_LAYER=auto asks before
 * choosing it): never under emulation, which costs seconds per sandbox.
 */
export function hardwareVirtualization(
  setting: 'auto' | Accel,
  kvmDevice: boolean,
  cpuinfo: string,
): { ok: boolean; detail: string } {
  if (setting === 'tcg') return { ok: false, detail: 'SANDBOT_VM_ACCEL=tcg (software emulation)' };
  if (!kvmDevice) return { ok: false, detail: 'no /dev/kvm on this host' };
  if (!cpuHasVirtualization(cpuinfo)) {
    return { ok: false, detail: '/dev/kvm exists but the CPU shows no vmx/svm' };
  }
  return { ok: true, detail: 'hardware virtualization (KVM)' };
}
