import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import type { Accel } from './accel.js';
import type { VmPaths } from './paths.js';
import { QEMU_USER, qemuArgs } from './qemu-args.js';
import { ensureQemuUser } from './qemu-user.js';
import { clearState, isGuestProcess, readState, type VmState, writeState } from './state.js';

export interface LaunchOptions {
  accel: Accel;
  memoryMb: number;
  cpus: number;
  /** Reuse this port (a restart keeps the address clients hold); absent: any free loopback port. */
  port?: number;
}

const QEMU = 'qemu-system-x86_64';

/** A free TCP port on the loopback (the guest engine's forwarded port). */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject()));
    });
  });
}

/** dockerd colours its log lines on the console. */
const ANSI_COLOUR = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, 'g');

/** The last lines of the guest's console, for error messages. */
export function consoleTail(paths: VmPaths, lines = 15): string {
  try {
    const text = readFileSync(paths.console, 'utf8').replaceAll(ANSI_COLOUR, '');
    return text.trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no console output)';
  }
}

/** The running guest's state, when its QEMU is alive. */
export function runningGuest(paths: VmPaths): VmState | undefined {
  const state = readState(paths);
  return state && isGuestProcess(state.pid, paths) ? state : undefined;
}

/**
 * Starts QEMU in its own session, detached, so the guest outlives the command that started it (a
 * `sandbot vm up` returns; a worker may restart without rebooting the guest). Rejects when QEMU exits
 * at once (bad arguments, missing files), with its own words.
 */
export async function launchQemu(paths: VmPaths, options: LaunchOptions): Promise<VmState> {
  for (const file of [paths.kernel, paths.initrd, paths.rootDisk]) {
    if (!existsSync(file))
      throw new Error(`the micro-VM guest is not built (${file} is missing): run \`sandbot vm build\``);
  }
  if (!existsSync(paths.dataDisk)) throw new Error(`the micro-VM data disk ${paths.dataDisk} is missing`);
  await mkdir(paths.run, { recursive: true, mode: 0o700 });
  if (existsSync(paths.console)) await rename(paths.console, `${paths.console}.1`);
  await rm(paths.control, { force: true });
  const port = options.port ?? (await freeLoopbackPort());
  await ensureQemuUser(QEMU_USER);
  const args = qemuArgs({
    user: QEMU_USER,
    paths,
    accel: options.accel,
    memoryMb: options.memoryMb,
    cpus: options.cpus,
    hostPort: port,
  });
  const logFile = `${paths.run}/qemu.log`;
  const log = openSync(logFile, 'w', 0o600);
  let child: ReturnType<typeof spawn>;
  try {
    child = spawn(QEMU, args, { detached: true, stdio: ['ignore', log, log] });
  } finally {
    closeSync(log);
  }
  const failed = await new Promise<string | undefined>((resolve) => {
    child.once('error', (error) =>
      resolve(
        (error as NodeJS.ErrnoException).code === 'ENOENT'
          ? `${QEMU} is not installed: apt-get install -y qemu-system-x86 (scripts/setup.sh does it)`
          : error.message,
      ),
    );
    child.once('exit', (code) =>
      resolve(`QEMU exited at once (${code}): ${readFileSync(logFile, 'utf8').trim()}`),
    );
    // QEMU fails on its arguments within milliseconds; a second alive means it is booting.
    setTimeout(() => resolve(undefined), 1000);
  });
  if (failed || child.pid === undefined) throw new Error(failed ?? 'QEMU did not start');
  child.unref();
  const state: VmState = {
    pid: child.pid,
    port,
    accel: options.accel,
    memoryMb: options.memoryMb,
    cpus: options.cpus,
    startedAt: new Date().toISOString(),
  };
  await writeState(paths, state);
  return state;
}

/** Asks the guest to power off over its control line (its init stops the engine and syncs the disk). */
function askPowerOff(paths: VmPaths): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection(paths.control);
    socket.once('error', () => resolve(false));
    socket.once('connect', () => socket.end('poweroff\n', () => resolve(true)));
  });
}

async function waitForExit(pid: number, paths: VmPaths, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (!isGuestProcess(pid, paths)) return true;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  return !isGuestProcess(pid, paths);
}

export type StopOutcome = 'not running' | 'powered off' | 'terminated' | 'killed';

/** Clean stop: power-off request, then SIGTERM, then SIGKILL, each after a grace period. */
export async function stopQemu(paths: VmPaths, graceMs = 60_000): Promise<StopOutcome> {
  const state = runningGuest(paths);
  if (!state) {
    await clearState(paths);
    return 'not running';
  }
  let outcome: StopOutcome = 'powered off';
  if (!((await askPowerOff(paths)) && (await waitForExit(state.pid, paths, graceMs)))) {
    outcome = 'terminated';
    process.kill(state.pid, 'SIGTERM');
    if (!(await waitForExit(state.pid, paths, 10_000))) {
      outcome = 'killed';
      process.kill(state.pid, 'SIGKILL');
      await waitForExit(state.pid, paths, 10_000);
    }
  }
  await clearState(paths);
  return outcome;
}
