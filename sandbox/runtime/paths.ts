import { lstatSync, realpathSync } from 'node:fs';
import path from 'node:path';

export type Confined = { ok: true; path: string } | { ok: false; error: string };

/** True when `candidate` is `root` or lies below it (both absolute and normalized). */
export function isInside(root: string, candidate: string): boolean {
  const rel = path.relative(root, candidate);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel));
}

/**
 * Where a path the model gave points, lexically: relative paths are taken from the workspace, absolute
 * ones must already be inside it, and `..` may not climb out. Symlinks are checked separately.
 */
export function confinePath(workspace: string, requested: string): Confined {
  if (requested.includes('\0')) return { ok: false, error: 'path contains a NUL character' };
  const root = path.resolve(workspace);
  const target = path.resolve(root, requested);
  if (!isInside(root, target)) {
    return {
      ok: false,
      error: `path "${requested}" is outside the workspace ${root}; use a path inside it, such as "notes.txt"`,
    };
  }
  return { ok: true, path: target };
}

/**
 * Confines `requested` to the workspace, also through symlinks: the real path of the nearest existing
 * ancestor (or of the target itself) must be inside the workspace's real path, and a symlink at the
 * target that leads nowhere is refused (writing through it would create a file wherever it points).
 */
export function resolveInWorkspace(workspace: string, requested: string): Confined {
  const lexical = confinePath(workspace, requested);
  if (!lexical.ok) return lexical;
  const realRoot = realpathSync(path.resolve(workspace));
  let probe = lexical.path;
  for (;;) {
    const stat = lstatOrUndefined(probe);
    if (stat) {
      let real: string;
      try {
        real = realpathSync(probe);
      } catch {
        return { ok: false, error: `path "${requested}" is a symbolic link that leads nowhere; refused` };
      }
      if (!isInside(realRoot, real)) {
        return {
          ok: false,
          error: `path "${requested}" goes through a symbolic link to ${real}, outside the workspace; refused`,
        };
      }
      return { ok: true, path: path.join(real, path.relative(probe, lexical.path)) };
    }
    const parent = path.dirname(probe);
    if (parent === probe) return { ok: false, error: `no part of path "${requested}" exists` };
    probe = parent;
  }
}

function lstatOrUndefined(p: string) {
  try {
    return lstatSync(p);
  } catch {
    return undefined;
  }
}
