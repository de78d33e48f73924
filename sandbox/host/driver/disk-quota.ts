import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, open, readFile, rm, rmdir, statfs, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { quotaName, unlinkQuotaName } from './disk-quota-link.js';
import type { WorkspaceSeed } from './types.js';

const run = promisify(execFile);
const AGENT_UID = 1000;

/**
 * A size-capped volume: an ext4 file system in a sparse image file, loop-mounted on the engine's host
 * and bind-mounted into the sandbox. Docker's named volumes cannot be capped on ext4 (no project
 * quotas), and a tmpfs volume would not survive an idle stop. Needs root (mount) on the engine's host,
 * so it serves a worker that runs beside its engine. Nothing here looks inside a mounted volume (an
 * agent's files, links included): a new volume's folders, and a new workspace's `seed` files (the
 * canary), are written into the image when it is formatted (mkfs -d), before any agent ran, and never
 * touched again.
 */
export async function ensureQuotaMount(
  root: string,
  linkedName: string,
  sizeMb: number,
  folders: string[] = [],
  seed?: WorkspaceSeed,
): Promise<string> {
  const base = resolve(root);
  // A claimed pooled sandbox's images keep their pool name (disk-quota-link.ts).
  const name = await quotaName(root, linkedName);
  const image = join(base, `${name}.img`);
  const mountPoint = join(base, 'mnt', name);
  await mkdir(join(base, 'mnt'), { recursive: true, mode: 0o700 });
  // Asked before the image is claimed, so a failure leaves no image half made for others to wait on.
  const files = seed && !existsSync(image) ? await seed.files() : undefined;
  if (await claim(image)) {
    const file = await open(image, 'r+');
    await file.truncate(sizeMb * 1024 * 1024);
    await file.close();
    await format(base, image, folders, files ?? []);
    await writeFile(`${image}.ready`, '');
    if (files && files.length > 0) seed?.planted();
  } else {
    await waitFor(() => existsSync(`${image}.ready`), `${image} to be formatted`);
  }
  await mkdir(mountPoint, { recursive: true, mode: 0o700 });
  if (!(await isMounted(mountPoint))) {
    await run('mount', ['-o', 'loop,nosuid,nodev', image, mountPoint]).catch((error: Error) => {
      throw new Error(
        `could not mount the ${sizeMb} MiB volume ${name}: ${error.message} (size-capped volumes need root)`,
      );
    });
  }
  return mountPoint;
}

/**
 * An ext4 file system in `image`, its top and `folders` owned by the agent, and `files` (relative paths,
 * their folders 0700 and themselves 0600, the agent's, as putWorkspaceFile plants them): copied from a
 * seed folder only sandbot has written.
 */
async function format(
  base: string,
  image: string,
  folders: string[],
  files: { path: string; bytes: Buffer }[],
): Promise<void> {
  const seed = await mkdtemp(join(base, '.seed-'));
  try {
    for (const folder of folders) await mkdir(join(seed, folder));
    for (const path of [seed, ...folders.map((f) => join(seed, f))]) await chown(path, AGENT_UID, AGENT_UID);
    for (const file of files) await seedFile(seed, file);
    // The image is a new sparse file, so its journal reads as zeros already: zeroing it again (64 MiB
    // for a 2 GiB volume) is only disk writes, which a burst of new conversations queues on.
    const extended = `root_owner=${AGENT_UID}:${AGENT_UID},lazy_journal_init=1`;
    await run('mkfs.ext4', ['-q', '-F', '-E', extended, '-d', seed, image]);
  } finally {
    await rm(seed, { recursive: true, force: true });
  }
}

async function seedFile(seed: string, file: { path: string; bytes: Buffer }): Promise<void> {
  const parts = file.path.split('/');
  if (parts.some((part) => part === '' || part === '.' || part === '..')) {
    throw new Error(`a workspace seed file must be a plain relative path: ${file.path}`);
  }
  for (let i = 1; i < parts.length; i++) {
    const folder = join(seed, ...parts.slice(0, i));
    if (!existsSync(folder)) await mkdir(folder, { mode: 0o700 });
    await chmod(folder, 0o700);
    await chown(folder, AGENT_UID, AGENT_UID);
  }
  const target = join(seed, ...parts);
  await writeFile(target, file.bytes, { mode: 0o600 });
  await chmod(target, 0o600);
  await chown(target, AGENT_UID, AGENT_UID);
}

/** Unmounts and deletes `name`'s image (the linked one, and the link, for a claimed pooled sandbox). */
export async function removeQuotaMount(root: string, linkedName: string): Promise<boolean> {
  const base = resolve(root);
  const name = await quotaName(root, linkedName);
  const image = join(base, `${name}.img`);
  const mountPoint = join(base, 'mnt', name);
  if (await isMounted(mountPoint)) await run('umount', ['-l', mountPoint]);
  const existed = existsSync(image);
  await rm(image, { force: true });
  await rm(`${image}.ready`, { force: true });
  // Only the empty mount point: never a recursive delete that could reach into a volume still mounted.
  await rmdir(mountPoint).catch(() => undefined);
  await unlinkQuotaName(root, linkedName);
  return existed;
}

/** True for the one caller that creates the image file (the others wait for it to be formatted). */
async function claim(image: string): Promise<boolean> {
  try {
    await (await open(image, 'wx', 0o600)).close();
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
}

async function isMounted(path: string): Promise<boolean> {
  const table = await readFile('/proc/self/mountinfo', 'utf8');
  return table.split('\n').some((line) => line.split(' ')[4] === path);
}

async function waitFor(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Used and total bytes of a mounted size-capped volume (the console's disk column); undefined when not mounted here. */
export async function quotaUsage(
  root: string,
  name: string,
): Promise<{ used: number; total: number } | undefined> {
  const mountPoint = join(resolve(root), 'mnt', await quotaName(root, name));
  if (!(await isMounted(mountPoint))) return undefined;
  const fs = await statfs(mountPoint);
  return { used: (fs.blocks - fs.bfree) * fs.bsize, total: fs.blocks * fs.bsize };
}
