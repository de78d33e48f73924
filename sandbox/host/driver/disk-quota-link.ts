import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { link, readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';

/**
 * A conversation's size-capped images may have been made under another name: a warm pool's sandbox is
 * created with images named by its pool id, mounted (in use) before any conversation exists, and a
 * mount point in use cannot be renamed. A claim therefore leaves `<root>/<name>.link` holding the
 * pooled image's name, and every lookup of an image by a conversation's volume name (mount, remove,
 * usage) goes through quotaName(). A file in the disk folder: it survives worker restarts and `rm`,
 * and goes with the images (`rm --wipe`, retention).
 */

const NAME = /^[a-z0-9][a-z0-9-]*$/;

const linkPath = (root: string, name: string) => join(resolve(root), `${name}.link`);

/** The image name that holds `name`'s files: the linked pooled one, or `name` itself. */
export async function quotaName(root: string, name: string): Promise<string> {
  let target: string;
  try {
    target = (await readFile(linkPath(root, name), 'utf8')).trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return name;
    throw error;
  }
  if (!NAME.test(target)) throw new Error(`the disk link of ${name} is not an image name: ${target}`);
  return target;
}

/**
 * Makes `name` resolve to the image `target` (a claim). Fails when `name` has a link or an image of
 * its own already: files of a conversation are never shadowed. Written whole before it appears
 * (a hard link of a finished file), so a reader never sees half a name.
 */
export async function linkQuotaName(root: string, name: string, target: string): Promise<void> {
  if (!NAME.test(target)) throw new Error(`not an image name: ${target}`);
  if (existsSync(join(resolve(root), `${name}.img`))) throw new Error(`${name} has an image of its own`);
  const temp = join(resolve(root), `.link-${randomBytes(6).toString('hex')}`);
  await writeFile(temp, target, { mode: 0o600 });
  try {
    await link(temp, linkPath(root, name));
  } finally {
    await rm(temp, { force: true });
  }
}

/** Removes `name`'s link (a claim undone, or its images removed). */
export async function unlinkQuotaName(root: string, name: string): Promise<void> {
  await rm(linkPath(root, name), { force: true });
}
