import { existsSync, readFileSync } from 'node:fs';
import { mkdir, open, readFile, rm } from 'node:fs/promises';
import type Dockerode from 'dockerode';
import type { Config } from '../../../src/contracts/config/schema.js';
import { createDocker } from '../driver/docker-client.js';
import { type AccelChoice, chooseAccel } from './accel.js';
import { ensureDataDisk } from './data-disk.js';
import { guestDocker, type ImageSync, syncImage, waitForEngine } from './guest-engine.js';
import { guestBuilt, type VmPaths, vmPaths } from './paths.js';
import { consoleTail, launchQemu, runningGuest, type StopOutcome, stopQemu } from './qemu-process.js';
import { isGuestProcess, type VmState } from './state.js';
import { readClientTls } from './tls.js';

export type VmConfig = Pick<
  Config,
  | 'SANDBOT_VM_DIR'
  | 'SANDBOT_VM_MEMORY_MB'
  | 'SANDBOT_VM_CPUS'
  | 'SANDBOT_VM_DISK_MB'
  | 'SANDBOT_VM_ACCEL'
  | 'SANDBOT_VM_BOOT_SECONDS'
  | 'SANDBOX_IMAGE'
  | 'DOCKER_HOST'
>;

export interface UpResult {
  state: VmState;
  /** False when the guest was already running. */
  started: boolean;
  accel: AccelChoice;
  /** From QEMU's start to the engine's first answer. */
  bootSeconds?: number;
  image: ImageSync;
  docker: Dockerode;
}

export interface VmStatus {
  built: boolean;
  running?: VmState;
  accel: AccelChoice;
  console: string;
}

/** The micro-VM of one SANDBOT_VM_DIR: start (boot, wait for the engine, load the image), stop, status. */
export class MicroVm {
  readonly paths: VmPaths;

  constructor(
    private readonly config: VmConfig,
    private readonly onLine: (line: string) => void = () => {},
  ) {
    this.paths = vmPaths(config.SANDBOT_VM_DIR);
  }

  accel(): AccelChoice {
    const cpuinfo = existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : '';
    return chooseAccel(this.config.SANDBOT_VM_ACCEL, existsSync('/dev/kvm'), cpuinfo);
  }

  built(): boolean {
    return guestBuilt(this.paths);
  }

  running(): VmState | undefined {
    return runningGuest(this.paths);
  }

  async client(port: number): Promise<Dockerode> {
    return guestDocker(await readClientTls(this.paths.tls), port);
  }

  /** Starts the guest unless it runs, waits for its engine, and makes sure it holds the sandbox image. */
  async up(options: { port?: number } = {}): Promise<UpResult> {
    if (!this.built()) throw new Error('the micro-VM guest is not built: run `sandbot vm build` first');
    const accel = this.accel();
    const host = createDocker(this.config.DOCKER_HOST);
    return this.locked(async () => {
      let state = this.running();
      let bootSeconds: number | undefined;
      const started = state === undefined;
      if (!state) {
        const disk = await ensureDataDisk(this.paths, {
          sizeMb: this.config.SANDBOT_VM_DISK_MB,
          host,
          image: this.config.SANDBOX_IMAGE,
          onLine: this.onLine,
        });
        if (disk !== 'kept')
          this.onLine(`created the data disk (${this.config.SANDBOT_VM_DISK_MB} MiB, sparse)`);
        this.onLine(`starting the micro-VM: ${accel.reason}`);
        state = await launchQemu(this.paths, {
          accel: accel.accel,
          memoryMb: this.config.SANDBOT_VM_MEMORY_MB,
          cpus: this.config.SANDBOT_VM_CPUS,
          port: options.port,
        });
      }
      const docker = await this.client(state.port);
      const pid = state.pid;
      const waited = await waitForEngine(docker, {
        timeoutMs: this.config.SANDBOT_VM_BOOT_SECONDS * 1000,
        alive: () => isGuestProcess(pid, this.paths),
        consoleTail: () => consoleTail(this.paths),
      });
      if (started) bootSeconds = waited;
      const image = await syncImage(host, docker, this.config.SANDBOX_IMAGE);
      if (image.status === 'loaded') {
        this.onLine(
          `loaded ${this.config.SANDBOX_IMAGE} into the micro-VM (${image.sent} of ${image.layers} layers sent)`,
        );
      }
      return { state, started, accel, bootSeconds, image, docker };
    });
  }

  down(graceMs?: number): Promise<StopOutcome> {
    return this.locked(() => stopQemu(this.paths, graceMs));
  }

  status(): VmStatus {
    return {
      built: this.built(),
      running: this.running(),
      accel: this.accel(),
      console: consoleTail(this.paths, 5),
    };
  }

  /**
   * One start or stop at a time per VM directory, across processes: an exclusive lock file naming its
   * holder; one whose holder died is taken over.
   */
  private async locked<T>(work: () => Promise<T>): Promise<T> {
    await mkdir(this.paths.run, { recursive: true, mode: 0o700 });
    const deadline = Date.now() + (this.config.SANDBOT_VM_BOOT_SECONDS + 120) * 1000;
    for (;;) {
      try {
        const handle = await open(this.paths.lock, 'wx', 0o600);
        await handle.writeFile(String(process.pid));
        await handle.close();
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        const holder = Number(await readFile(this.paths.lock, 'utf8').catch(() => ''));
        if (!holder || !processAlive(holder)) {
          await rm(this.paths.lock, { force: true });
          continue;
        }
        if (Date.now() > deadline) throw new Error(`another process (${holder}) holds ${this.paths.lock}`);
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
    try {
      return await work();
    } finally {
      await rm(this.paths.lock, { force: true });
    }
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
