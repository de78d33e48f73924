import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import type Dockerode from 'dockerode';
import { DEFAULT_READ_BUDGET, type ReadBudget, type ReadCut, readArchive } from './archive-read.js';

/** One entry of /workspace as the engine's archive shows it. */
export interface WorkspaceEntry {
  type: 'file' | 'symlink';
  size: number;
  mtimeMs: number;
  /** Of the content (a symlink: of its target); absent when over the hashing limits. */
  sha256?: string;
  /** Permission bits (e.g. 0o600). */
  mode?: number;
}

export interface WorkspaceSnapshot {
  /** By absolute path, e.g. "/workspace/notes.txt". */
  entries: Record<string, WorkspaceEntry>;
  /** More entries than the limit, or the read was cut: the rest were not looked at. */
  truncated: boolean;
  /** The read overran its budget (bytes or time) or was stopped, and was cut there. */
  cut?: ReadCut;
  /** Permission bits of the directories, by absolute path (up to the entry limit). */
  directories?: Record<string, number>;
}

export interface SnapshotLimits {
  /** Files larger than this are listed (size, mtime) but not hashed. */
  maxFileBytes: number;
  /** Hashing stops after this many bytes in one snapshot; later files are listed only. */
  maxTotalBytes: number;
  maxEntries: number;
}

export const DEFAULT_SNAPSHOT_LIMITS: SnapshotLimits = {
  maxFileBytes: 16 * 1024 * 1024,
  maxTotalBytes: 256 * 1024 * 1024,
  maxEntries: 20_000,
};

/**
 * What /workspace holds, read through the engine's archive API: from outside the container, so the
 * agent can neither hide a change nor claim one. Directories are left out (their files say enough).
 * Bounded by `budget`: a file larger than what is left of it (e.g. a sparse one: the archive streams
 * its apparent size) is listed by its header and the read is cut there, recorded in `cut`.
 */
export async function snapshotWorkspace(
  container: Dockerode.Container,
  limits: SnapshotLimits = DEFAULT_SNAPSHOT_LIMITS,
  budget: ReadBudget = DEFAULT_READ_BUDGET,
): Promise<WorkspaceSnapshot> {
  const snapshot: WorkspaceSnapshot = { entries: {}, truncated: false, directories: {} };
  const directories = snapshot.directories as Record<string, number>;
  let count = 0;
  let dirCount = 0;
  let hashed = 0;
  const skip = (body: Readable, next: () => void) => {
    body.on('end', next);
    body.resume();
  };
  const read = await readArchive(container, '/workspace', budget, (header, body, next, archive) => {
    // The archive's names start with the directory's own name: "workspace/a/b.txt".
    const relative = header.name.replace(/^\.?\/?workspace\/?/, '').replace(/\/$/, '');
    const type = header.type === 'file' ? 'file' : header.type === 'symlink' ? 'symlink' : undefined;
    const mode = (header.mode ?? 0) & 0o7777;
    if (header.type === 'directory' && relative !== '' && ++dirCount <= limits.maxEntries) {
      directories[`/workspace/${relative}`] = mode;
    }
    if (type === undefined || relative === '' || snapshot.truncated) return skip(body, next);
    if (++count > limits.maxEntries) {
      snapshot.truncated = true;
      return skip(body, next);
    }
    const path = `/workspace/${relative}`;
    const mtimeMs = header.mtime?.getTime() ?? 0;
    if (type === 'symlink') {
      const target = header.linkname ?? '';
      snapshot.entries[path] = { type, size: Buffer.byteLength(target), mtimeMs, sha256: sha(target), mode };
      return skip(body, next);
    }
    const size = header.size ?? 0;
    if (size > archive.left()) {
      // Recorded by its size and time, not read: streaming it would spend the budget on its bytes.
      snapshot.entries[path] = { type, size, mtimeMs, mode };
      archive.cut('bytes', path);
      return;
    }
    const hashIt = size <= limits.maxFileBytes && hashed + size <= limits.maxTotalBytes;
    const hash = hashIt ? createHash('sha256') : undefined;
    if (hashIt) hashed += size;
    body.on('data', (chunk: Buffer) => hash?.update(chunk));
    body.on('end', () => {
      snapshot.entries[path] = { type, size, mtimeMs, mode, ...(hash ? { sha256: hash.digest('hex') } : {}) };
      next();
    });
  });
  if (read.missing) throw new Error('the sandbox has no /workspace');
  if (read.cut) {
    snapshot.truncated = true;
    snapshot.cut = read.cut;
  }
  return snapshot;
}

function sha(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
