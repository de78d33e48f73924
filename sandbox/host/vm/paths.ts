import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** Where the micro-VM's files live under SANDBOT_VM_DIR. */
export interface VmPaths {
  root: string;
  /** Built artefacts: kernel, initramfs, read-only root disk, and the hash of what they were built from. */
  guest: string;
  kernel: string;
  initrd: string;
  rootDisk: string;
  buildInputs: string;
  /** What the build found: kernel package and the guest engine's version. */
  manifest: string;
  /** The debootstrap tarball, reused while its inputs stay the same. */
  cache: string;
  /** CA, the engine's server keys (baked into the root disk) and the worker's client keys. */
  tls: string;
  /** The guest's writable disk: images, containers, volumes. Created once; kept across rebuilds. */
  dataDisk: string;
  /** Run state: the QEMU pid and port, its console log, the control socket. */
  run: string;
  state: string;
  console: string;
  control: string;
  lock: string;
  /** Host-side scratch space for seeding the data disk. */
  scratch: string;
}

export function vmPaths(dir: string): VmPaths {
  const root = resolve(dir);
  const guest = join(root, 'guest');
  const run = join(root, 'run');
  return {
    root,
    guest,
    kernel: join(guest, 'vmlinuz'),
    initrd: join(guest, 'initrd.img'),
    rootDisk: join(guest, 'root.img'),
    buildInputs: join(guest, 'inputs.sha256'),
    manifest: join(guest, 'manifest.json'),
    cache: join(root, 'cache'),
    tls: join(root, 'tls'),
    dataDisk: join(root, 'data.img'),
    run,
    state: join(run, 'state.json'),
    console: join(run, 'console.log'),
    control: join(run, 'control.sock'),
    lock: join(run, 'start.lock'),
    scratch: join(root, 'scratch'),
  };
}

/** The guest build's shell scripts ship as source files next to this module's source. */
export function guestFilesDir(projectRoot: string): string {
  return join(projectRoot, 'sandbox', 'host', 'vm', 'guest');
}

/** The guest is built: its kernel, initramfs and root disk are there (`sandbot vm build`). */
export function guestBuilt(paths: VmPaths): boolean {
  return [paths.kernel, paths.initrd, paths.rootDisk].every((file) => existsSync(file));
}
