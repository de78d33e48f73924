import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

/** Source (in the checkout) and place in the image's build context of the gVisor statx shim (see layer.ts). */
export const STATX_SHIM_SOURCE = 'sandbox/gvisor/statx-shim.c';
export const STATX_SHIM_CONTEXT_DIR = 'sandbox/gvisor';

export type ShimBuild = { built: true } | { built: false; reason: string };

/**
 * Compiles the statx shim into `<staging>/sandbox/gvisor/statx-shim.so` with the host's C compiler. The
 * directory is always made (the Dockerfile copies it); without a compiler it stays empty, and the
 * gVisor layer's start-up check then says what to install.
 */
export async function buildStatxShim(projectRoot: string, staging: string): Promise<ShimBuild> {
  const outDir = join(staging, STATX_SHIM_CONTEXT_DIR);
  await mkdir(outDir, { recursive: true });
  const source = join(projectRoot, STATX_SHIM_SOURCE);
  if (!existsSync(source)) return { built: false, reason: `${source} is missing` };
  const compiler = process.env.CC ?? 'cc';
  try {
    await promisify(execFile)(
      compiler,
      ['-shared', '-fPIC', '-O2', '-o', join(outDir, 'statx-shim.so'), source],
      {
        timeout: 60_000,
      },
    );
    return { built: true };
  } catch (error) {
    const e = error as { code?: unknown; stderr?: string; message?: string };
    if (e.code === 'ENOENT') return { built: false, reason: `no C compiler (${compiler}) found` };
    return { built: false, reason: (e.stderr || e.message || String(error)).trim().slice(0, 400) };
  }
}
