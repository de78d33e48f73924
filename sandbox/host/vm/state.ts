import { readFileSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { z } from 'zod';
import type { VmPaths } from './paths.js';

/** What a running guest's QEMU left in run/state.json for other processes (CLI, other workers). */
export const VmState = z.object({
  pid: z.number().int().positive(),
  /** Loopback port forwarded to the guest engine (kept across restarts: clients keep their address). */
  port: z.number().int().min(1).max(65_535),
  accel: z.enum(['kvm', 'tcg']),
  memoryMb: z.number().int().positive(),
  cpus: z.number().int().positive(),
  startedAt: z.string(),
});
export type VmState = z.infer<typeof VmState>;

export function readState(paths: VmPaths): VmState | undefined {
  let text: string;
  try {
    text = readFileSync(paths.state, 'utf8');
  } catch {
    return undefined;
  }
  try {
    const parsed = VmState.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

export async function writeState(paths: VmPaths, state: VmState): Promise<void> {
  await writeFile(paths.state, `${JSON.stringify(state)}\n`, { mode: 0o600 });
}

export async function clearState(paths: VmPaths): Promise<void> {
  await rm(paths.state, { force: true });
}

/**
 * Whether `pid` is this guest's QEMU: alive, and its command line names this guest's root disk (a pid
 * reused by another process after a crash must not count).
 */
export function isGuestProcess(pid: number, paths: VmPaths): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.includes('qemu-system') && cmdline.includes(paths.rootDisk);
  } catch {
    return false;
  }
}
