import { buffer } from 'node:stream/consumers';
import type Dockerode from 'dockerode';
import { DEFAULT_READ_BUDGET, type ReadBudget, readArchive } from './archive-read.js';
import { cutNote, type FileBytes } from './workspace-files.js';

export interface WorkspaceFilesResult {
  /** By the path asked for. */
  files: (FileBytes & { path: string })[];
  /** Paths not read, each with the reason (missing, not a regular file, too large, read cut). */
  refused: string[];
}

/**
 * Reads regular files of a sandbox's /workspace through the engine's archive API: from outside the
 * container, so nothing in it does the reading, and sizes come from the archive, not from the agent.
 * `paths` are relative to /workspace and already checked (see src/worker/delegation/delegation-policy.ts).
 * All of them together stay within `budget`; each read ends once its first entry is judged (a folder
 * or an oversized file is never streamed).
 */
export async function readWorkspaceFiles(
  container: Dockerode.Container,
  paths: readonly string[],
  maxBytes: number,
  budget: ReadBudget = DEFAULT_READ_BUDGET,
): Promise<WorkspaceFilesResult> {
  const result: WorkspaceFilesResult = { files: [], refused: [] };
  const began = performance.now();
  let streamed = 0;
  for (const path of paths) {
    const left = {
      ...budget,
      maxBytes: budget.maxBytes - streamed,
      maxMs: Math.max(0, budget.maxMs - (performance.now() - began)),
    };
    let outcome: { bytes: Buffer } | { problem: string } | undefined;
    const read = await readArchive(container, `/workspace/${path}`, left, (header, body, next, archive) => {
      const size = header.size ?? 0;
      if (header.type !== 'file') outcome = { problem: 'not a regular file' };
      else if (size > maxBytes) outcome = { problem: `over the ${maxBytes}-byte limit` };
      else if (size > archive.left()) outcome = { problem: 'over what one copy may stream' };
      if (outcome !== undefined) return archive.end();
      buffer(body).then((bytes) => {
        outcome = { bytes };
        streamed += bytes.length;
        archive.end();
      }, next);
    });
    if (read.missing) outcome = { problem: 'no such file' };
    else if (read.cut) outcome = { problem: cutNote(read.cut) };
    outcome ??= { problem: 'empty archive' };
    if ('bytes' in outcome) {
      result.files.push({ path, name: path.split('/').at(-1) ?? path, bytes: outcome.bytes });
    } else result.refused.push(`${path} (${outcome.problem})`);
  }
  return result;
}
