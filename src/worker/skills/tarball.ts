import { createReadStream } from 'node:fs';
import { posix } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { extract } from 'tar-stream';
import { SKILL_LIMITS, type SkillFile } from './hashing.js';

/** Is this path a tarball `skill add` reads (rather than a folder)? */
export function isTarball(path: string): boolean {
  return /\.(tar\.gz|tgz|tar)$/i.test(path);
}

/**
 * Reads a skill from a .tar.gz/.tgz/.tar into memory without unpacking it on disk. Only regular files
 * and folders are accepted: links, devices, absolute paths and ".." are refused with the entry named.
 * When every file sits under one top folder (as `tar czf x.tgz myskill/` makes), that folder is dropped.
 */
export async function readSkillTarball(path: string): Promise<SkillFile[]> {
  const files: SkillFile[] = [];
  let total = 0;
  const reader = extract();
  reader.on('entry', (header, body, next) => {
    const fail = (message: string) => {
      body.resume();
      next(new Error(`${header.name}: ${message}`));
    };
    const name = header.name.replace(/^\.\//, '');
    if (header.type === 'directory') {
      body.on('end', () => next());
      body.resume();
      return;
    }
    if (header.type !== 'file') return fail(`is a ${header.type}; skills may hold only regular files`);
    if (name.startsWith('/') || name.split('/').includes('..')) return fail('has an absolute path or ".."');
    const size = header.size ?? 0;
    total += size;
    if (files.length >= SKILL_LIMITS.maxFiles) return fail(`more than ${SKILL_LIMITS.maxFiles} files`);
    if (size > SKILL_LIMITS.maxFileBytes || total > SKILL_LIMITS.maxTotalBytes) {
      return fail(
        `the skill is over its size limit (${SKILL_LIMITS.maxFileBytes} bytes a file, ${SKILL_LIMITS.maxTotalBytes} in all)`,
      );
    }
    buffer(body).then((bytes) => {
      files.push({ path: posix.normalize(name), bytes });
      next();
    }, next);
  });
  const sink = reader as unknown as NodeJS.WritableStream;
  try {
    if (/\.tar$/i.test(path)) await pipeline(createReadStream(path), sink);
    else await pipeline(createReadStream(path), createGunzip(), sink);
  } catch (error) {
    const message = (error as Error).message;
    throw new Error(
      /incorrect header|unexpected end|invalid tar/i.test(message)
        ? `${path} is not a readable tarball (${message})`
        : message,
    );
  }
  return stripTopFolder(files);
}

/** Drops a folder every file shares ("weather/SKILL.md" → "SKILL.md"). */
export function stripTopFolder(files: SkillFile[]): SkillFile[] {
  const tops = new Set(files.map((f) => (f.path.includes('/') ? f.path.split('/')[0] : '')));
  const [top] = [...tops];
  if (tops.size !== 1 || !top) return files;
  return files.map((f) => ({ ...f, path: f.path.slice(top.length + 1) }));
}
