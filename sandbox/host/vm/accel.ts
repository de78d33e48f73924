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
