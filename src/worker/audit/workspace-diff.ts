import type { WorkspaceEntry, WorkspaceSnapshot } from '../../../sandbox/host/driver/workspace-snapshot.js';

export interface FileChange {
  kind: 'file.created' | 'file.changed' | 'file.deleted';
  data: {
    path: string;
    type: 'file' | 'symlink';
    size: number;
    sha256?: string;
    hashed: boolean;
    previous?: { size: number; sha256?: string };
  };
}

/**
 * What changed in /workspace between two snapshots, sorted by path. Files too large to hash compare by
 * size and modification time. When a snapshot was cut short, files missing from one side are not
 * judged created or deleted (they may just be past the limit).
 */
export function diffWorkspace(before: WorkspaceSnapshot, after: WorkspaceSnapshot): FileChange[] {
  const partial = before.truncated || after.truncated;
  const paths = [...new Set([...Object.keys(before.entries), ...Object.keys(after.entries)])].sort();
  const changes: FileChange[] = [];
  for (const path of paths) {
    const old = before.entries[path];
    const now = after.entries[path];
    if (old && now) {
      if (differs(old, now)) {
        changes.push({
          kind: 'file.changed',
          data: {
            ...describe(path, now),
            previous: { size: old.size, ...(old.sha256 ? { sha256: old.sha256 } : {}) },
          },
        });
      }
    } else if (now && !partial) changes.push({ kind: 'file.created', data: describe(path, now) });
    else if (old && !partial) changes.push({ kind: 'file.deleted', data: describe(path, old) });
  }
  return changes;
}

function differs(a: WorkspaceEntry, b: WorkspaceEntry): boolean {
  if (a.type !== b.type || a.size !== b.size) return true;
  if (a.sha256 && b.sha256) return a.sha256 !== b.sha256;
  return a.mtimeMs !== b.mtimeMs;
}

function describe(path: string, entry: WorkspaceEntry): FileChange['data'] {
  return {
    path,
    type: entry.type,
    size: entry.size,
    ...(entry.sha256 ? { sha256: entry.sha256 } : {}),
    hashed: entry.sha256 !== undefined,
  };
}
