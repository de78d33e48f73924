import type { Accel } from './accel.js';
import type { VmPaths } from './paths.js';

/** The guest's address on QEMU's user network and the port its engine listens on (TLS). */
export const GUEST_ADDRESS = '10.0.2.15';
export const GUEST_ENGINE_PORT = 2376;

export interface QemuOptions {
  paths: VmPaths;
  accel: Accel;
  memoryMb: number;
  cpus: number;
  /** Loopback port on the host forwarded to the guest's engine. */
  hostPort: number;
  /** The unprivileged user QEMU becomes once its files and devices are open (QEMU_USER). */
  user: string;
}

/** The system user QEMU runs as (created by `ensureQemuUser`, sandbox/host/vm/qemu-user.ts). */
export const QEMU_USER = 'sandbot-vm';

/**
 * The QEMU command line. What matters for security:
 * - the user network is `restrict=on`: the guest reaches neither the host nor anything outside; the one
 *   way in is the forwarded engine port, bound to the host's loopback only;
 * - the root disk is read-only, so nothing the guest does survives a restart except its data disk;
 * - QEMU drops root for an unprivileged user of its own (-runas) once its disks, devices and sockets
 *   are open, for good (all of its uids), so QEMU's seccomp sandbox allows the set*id calls that drop
 *   needs (`elevateprivileges=deny` would kill it at the drop); what QEMU may not do is start processes;
 * - QEMU's own seccomp sandbox is on, and no devices exist beyond the ones listed (-nodefaults).
 * q35 rather than -M microvm: the latter hangs under TCG calibrating its clock.
 */
export function qemuArgs(options: QemuOptions): string[] {
  const { paths, accel, memoryMb, cpus, hostPort, user } = options;
  const kernelArgs = ['console=ttyS0', 'root=/dev/vda', 'ro', 'panic=1', 'net.ifnames=0', 'loglevel=4'].join(
    ' ',
  );
  return [
    '-name',
    'sandbot-guest',
    '-machine',
    'q35',
    '-accel',
    accel === 'tcg' ? 'tcg,thread=multi' : 'kvm',
    '-cpu',
    accel === 'kvm' ? 'host' : 'max',
    '-smp',
    String(cpus),
    '-m',
    String(memoryMb),
    '-nodefaults',
    '-no-user-config',
    '-display',
    'none',
    '-no-reboot',
    '-kernel',
    paths.kernel,
    '-initrd',
    paths.initrd,
    '-append',
    kernelArgs,
    '-drive',
    `if=none,id=root,file=${paths.rootDisk},format=raw,readonly=on`,
    '-device',
    'virtio-blk-pci,drive=root',
    '-drive',
    `if=none,id=data,file=${paths.dataDisk},format=raw,discard=unmap`,
    '-device',
    'virtio-blk-pci,drive=data',
    '-netdev',
    `user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:${hostPort}-${GUEST_ADDRESS}:${GUEST_ENGINE_PORT}`,
    '-device',
    'virtio-net-pci,netdev=net0,romfile=',
    '-device',
    'virtio-rng-pci',
    '-chardev',
    `file,id=console,path=${paths.console}`,
    '-serial',
    'chardev:console',
    '-chardev',
    `socket,id=control,path=${paths.control},server=on,wait=off`,
    '-serial',
    'chardev:control',
    '-runas',
    user,
    '-sandbox',
    'on,obsolete=deny,elevateprivileges=allow,spawn=deny,resourcecontrol=deny',
  ];
}
