import { createHash } from 'node:crypto';
import { lstat, readdir, readFile } from 'node:fs/promises';
import { join, posix } from 'node:path';

/** One file of a skill: its path relative to the skill's folder (posix) and its bytes. */
export interface SkillFile {
  path: string;
  bytes: Buffer;
}

export interface FileDigest {
  path: string;
  size: number;
  sha256: string;
}

/** What a skill may hold: small text and scripts, not a software distribution. */
export const SKILL_LIMITS = { maxFiles: 500, maxFileBytes: 1024 * 1024, maxTotalBytes: 5 * 1024 * 1024 };

export function sha256(bytes: Buffer | string): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Per-file digests, sorted by path. */
export function fileDigests(files: readonly SkillFile[]): FileDigest[] {
  return files
    .map((f) => ({ path: f.path, size: f.bytes.length, sha256: sha256(f.bytes) }))
    .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** The skill's content hash: over every file's path and sha256, so adding, removing or renaming a file shows. */
export function contentHash(digests: readonly FileDigest[]): string {
  const sorted = [...digests].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return sha256(sorted.map((d) => `${d.path}\0${d.sha256}\n`).join(''));
}

/** Checks a file list against the limits; the first problem in words, or undefined. */
export function checkLimits(files: readonly SkillFile[]): string | undefined {
  if (files.length === 0) return 'the skill has no files';
  if (files.length > SKILL_LIMITS.maxFiles)
    return `the skill has ${files.length} files; at most ${SKILL_LIMITS.maxFiles}`;
  const big = files.find((f) => f.bytes.length > SKILL_LIMITS.maxFileBytes);
  if (big)
    return `${big.path} is ${big.bytes.length} bytes; a skill file may have at most ${SKILL_LIMITS.maxFileBytes}`;
  const total = files.reduce((sum, f) => sum + f.bytes.length, 0);
  if (total > SKILL_LIMITS.maxTotalBytes)
    return `the skill has ${total} bytes; at most ${SKILL_LIMITS.maxTotalBytes}`;
  return undefined;
}

/**
 * Reads every regular file under `dir`. Links, devices and other special files are refused (a link
 * could point anywhere once mounted), as are more files or bytes than SKILL_LIMITS allows.
 */
export async function readSkillDir(dir: string): Promise<SkillFile[]> {
  const files: SkillFile[] = [];
  let total = 0;
  const walk = async (relative: string): Promise<void> => {
    const entries = await readdir(join(dir, relative), { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const entry of entries) {
      const path = relative === '' ? entry.name : posix.join(relative, entry.name);
      const stat = await lstat(join(dir, path));
      if (stat.isSymbolicLink())
        throw new Error(`${path} is a symbolic link; skills may hold only regular files`);
      if (stat.isDirectory()) {
        await walk(path);
        continue;
      }
      if (!stat.isFile())
        throw new Error(`${path} is not a regular file; skills may hold only regular files`);
      if (files.length >= SKILL_LIMITS.maxFiles) throw new Error(`more than ${SKILL_LIMITS.maxFiles} files`);
      total += stat.size;
      if (stat.size > SKILL_LIMITS.maxFileBytes || total > SKILL_LIMITS.maxTotalBytes) {
        throw new Error(
          `${path}: the skill is over its size limit (${SKILL_LIMITS.maxFileBytes} bytes a file, ${SKILL_LIMITS.maxTotalBytes} in all)`,
        );
      }
      files.push({ path, bytes: await readFile(join(dir, path)) });
    }
  };
  await walk('');
  return files;
}
