import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const ROOT = new URL('../../', import.meta.url).pathname;

export interface Footprint {
  bytes: number;
  packages: number;
  seconds: number;
  largest: { name: string; bytes: number }[];
  /** The npm command that made the install (`npm ci` unless npm refused the lock file). */
  method: string;
  /** `npm ci` refused the lock file (out of sync with package.json). */
  lockRefused: boolean;
  error?: string;
}

/** Disk use (du, KiB blocks) of a path, in bytes. */
async function du(path: string): Promise<number> {
  const { stdout } = await run('du', ['-sk', path]);
  return Number(stdout.split('\t')[0]) * 1024;
}

/**
 * A production install of this package.json + lock into a temp dir: `npm ci --omit=dev`, or where npm
 * refuses the lock file, `npm install --omit=dev`. What it puts on disk is the footprint.
 */
export async function measureFootprint(timeoutMs = 150_000): Promise<Footprint> {
  const dir = mkdtempSync(join(tmpdir(), 'sandbot-footprint-'));
  const began = performance.now();
  try {
    for (const file of ['package.json', 'package-lock.json']) copyFileSync(join(ROOT, file), join(dir, file));
    // --prefer-offline: npm's cache answers what it holds, so a slow registry does not decide the run time.
    const flags = ['--omit=dev', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'];
    let method = 'npm ci --omit=dev';
    let lockRefused = false;
    try {
      await run('npm', ['ci', ...flags], { cwd: dir, timeout: timeoutMs });
    } catch {
      method = 'npm install --omit=dev';
      lockRefused = true;
      rmSync(join(dir, 'node_modules'), { recursive: true, force: true });
      await run('npm', ['install', ...flags], { cwd: dir, timeout: timeoutMs });
    }
    const seconds = (performance.now() - began) / 1000;
    const modules = join(dir, 'node_modules');
    const top = readdirSync(modules).flatMap((name) =>
      name.startsWith('@') ? readdirSync(join(modules, name)).map((sub) => `${name}/${sub}`) : [name],
    );
    const sized = await Promise.all(
      top
        .filter((n) => !n.startsWith('.'))
        .map(async (name) => ({ name, bytes: await du(join(modules, name)) })),
    );
    sized.sort((a, b) => b.bytes - a.bytes);
    return {
      bytes: await du(modules),
      packages: sized.length,
      seconds,
      largest: sized.slice(0, 5),
      method,
      lockRefused,
    };
  } catch (error) {
    const seconds = (performance.now() - began) / 1000;
    const message = error instanceof Error ? error.message.split('\n')[0] : String(error);
    return {
      bytes: Number.NaN,
      packages: 0,
      seconds,
      largest: [],
      method: 'npm ci / npm install',
      lockRefused: false,
      error: message,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
