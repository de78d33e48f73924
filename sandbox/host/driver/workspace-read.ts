import { buffer } from 'node:stream/consumers';
import type Dockerode from 'dockerode';
import { extract } from 'tar-stream';
import type { FileBytes } from './workspace-files.js';

export interface WorkspaceFilesResult {
  /** By the path asked for. */
  files: (FileBytes & { path: string })[];
  /** Paths not read, each with the reason (missing, not a regular file, too large). */
  refused: string[];
}

/**
 * Reads regular files of a sandbox's /workspace through the engine's archive API: from outside the
 * container, so nothing in it does the reading, and sizes come from the archive, not from the agent.
 * `paths` are relative to /workspace and already checked (see src/worker/delegation/delegation-policy.ts).
 */
export async function readWorkspaceFiles(
  container: Dockerode.Container,
  paths: readonly string[],
  maxBytes: number,
): Promise<WorkspaceFilesResult> {
  const result: WorkspaceFilesResult = { files: [], refused: [] };
  for (const path of paths) {
    let stream: NodeJS.ReadableStream;
    try {
      stream = await container.getArchive({ path: `/workspace/${path}` });
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode !== 404) throw error;
      result.refused.push(`${path} (no such file)`);
      continue;
    }
    const read = await firstEntry(stream, maxBytes);
    if ('bytes' in read) result.files.push({ path, name: path.split('/').at(-1) ?? path, bytes: read.bytes });
    else result.refused.push(`${path} (${read.problem})`);
  }
  return result;
}

/** The archive's first entry when it is a regular file within the size limit; the rest is drained. */
function firstEntry(
  stream: NodeJS.ReadableStream,
  maxBytes: number,
): Promise<{ bytes: Buffer } | { problem: string }> {
  const reader = extract();
  let outcome: { bytes: Buffer } | { problem: string } | undefined;
  return new Promise((resolve, reject) => {
    reader.on('entry', (header, body, next) => {
      if (outcome !== undefined) {
        body.resume();
        body.on('end', next);
        return;
      }
      if (header.type !== 'file') outcome = { problem: 'not a regular file' };
      else if ((header.size ?? 0) > maxBytes) outcome = { problem: `over the ${maxBytes}-byte limit` };
      if (outcome !== undefined) {
        body.resume();
        body.on('end', next);
        return;
      }
      buffer(body).then((bytes) => {
        outcome = { bytes };
        next();
      }, next);
    });
    reader.on('finish', () => resolve(outcome ?? { problem: 'empty archive' }));
    reader.on('error', reject);
    stream.pipe(reader);
  });
}
