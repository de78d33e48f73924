import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { findProjectRoot } from '../image/image.js';
import { guestFilesDir, type VmPaths } from './paths.js';
import { ensureTlsMaterial, TLS_FILES } from './tls.js';

/** Files whose content decides the guest: the build script, both inits, the engine's server keys. */
export const GUEST_SCRIPTS = ['build-guest.sh', 'guest-init.sh', 'initramfs-init.sh'] as const;

/** One hash over named inputs; the names are part of it so moving content between files changes it. */
export function inputsHash(inputs: ReadonlyArray<{ name: string; content: Buffer | string }>): string {
  const hash = createHash('sha256');
  for (const { name, content } of [...inputs].sort((a, b) => a.name.localeCompare(b.name))) {
    hash.update(`${name}\0${Buffer.byteLength(content)}\0`);
    hash.update(content);
  }
  return hash.digest('hex');
}

/** Whether the built guest is there and was built from exactly these inputs. */
export function guestIsCurrent(
  artefactsExist: boolean,
  recordedHash: string | undefined,
  currentHash: string,
): boolean {
  return artefactsExist && recordedHash?.trim() === currentHash;
}

export interface BuildOptions {
  /** Rebuild even when nothing changed (e.g. to pick up a new Debian kernel). */
  force?: boolean;
  /** Each line the build prints. */
  onLine?: (line: string) => void;
  projectRoot?: string;
}

export interface BuildResult {
  built: boolean;
  seconds: number;
  tls: 'created' | 'kept';
}

async function currentInputs(paths: VmPaths, filesDir: string) {
  const inputs: Array<{ name: string; content: Buffer }> = [];
  for (const name of GUEST_SCRIPTS) inputs.push({ name, content: await readFile(join(filesDir, name)) });
  for (const name of [TLS_FILES.ca, TLS_FILES.serverCert, TLS_FILES.serverKey]) {
    inputs.push({ name: `tls/${name}`, content: await readFile(join(paths.tls, name)) });
  }
  return inputsHash(inputs);
}

/**
 * Builds the guest (kernel, initramfs, root disk) unless it exists and its inputs are unchanged.
 * The TLS material is made first, since the root disk carries the engine's server keys.
 */
export async function buildGuest(paths: VmPaths, options: BuildOptions = {}): Promise<BuildResult> {
  const started = performance.now();
  const filesDir = guestFilesDir(options.projectRoot ?? findProjectRoot());
  await mkdir(paths.root, { recursive: true, mode: 0o700 });
  await mkdir(paths.guest, { recursive: true, mode: 0o700 });
  await chmod(paths.guest, 0o700);
  const tls = await ensureTlsMaterial(paths.tls);
  const hash = await currentInputs(paths, filesDir);
  const artefactsExist = [paths.kernel, paths.initrd, paths.rootDisk].every((file) => existsSync(file));
  const recorded = await readFile(paths.buildInputs, 'utf8').catch(() => undefined);
  if (!options.force && guestIsCurrent(artefactsExist, recorded, hash)) {
    return { built: false, seconds: (performance.now() - started) / 1000, tls };
  }
  await rm(paths.buildInputs, { force: true });
  await runScript(
    join(filesDir, 'build-guest.sh'),
    ['--out', paths.guest, '--cache', paths.cache, '--tls', paths.tls, '--files', filesDir],
    options.onLine,
  );
  await writeFile(paths.buildInputs, `${hash}\n`);
  return { built: true, seconds: (performance.now() - started) / 1000, tls };
}

function runScript(script: string, args: string[], onLine?: (line: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const tail: string[] = [];
    const take = (line: string) => {
      tail.push(line);
      if (tail.length > 20) tail.shift();
      onLine?.(line);
    };
    createInterface({ input: child.stdout }).on('line', take);
    createInterface({ input: child.stderr }).on('line', take);
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve();
      else reject(new Error(`building the micro-VM guest failed (exit ${code}):\n${tail.join('\n')}`));
    });
  });
}
