import { buffer } from 'node:stream/consumers';
import type Dockerode from 'dockerode';
import { pack } from 'tar-stream';
import { DEFAULT_READ_BUDGET, type ReadBudget, type ReadCut, readArchive } from './archive-read.js';

export interface FileBytes {
  name: string;
  bytes: Buffer;
}

const AGENT_UID = 1000;

/**
 * Copies files into the sandbox's /workspace/inbox through the engine's archive API: from outside the
 * container, so nothing in it is trusted to do the copying. Names are plain file names (validated by
 * FileRef); an existing file of the same name is replaced.
 */
export async function putInboxFiles(container: Dockerode.Container, files: FileBytes[]): Promise<void> {
  if (files.length === 0) return;
  const archive = pack();
  const owner = { uid: AGENT_UID, gid: AGENT_UID };
  archive.entry({ name: 'inbox/', type: 'directory', mode: 0o755, ...owner });
  for (const file of files) archive.entry({ name: `inbox/${file.name}`, mode: 0o644, ...owner }, file.bytes);
  archive.finalize();
  // tar-stream's Pack is a streamx Readable: compatible at run time, not by its type.
  await container.putArchive(archive as unknown as NodeJS.ReadableStream, { path: '/workspace' });
}

/** Writes one file at a path relative to /workspace (parent folders created, owned by the agent). */
export async function putWorkspaceFile(
  container: Dockerode.Container,
  path: string,
  bytes: Buffer,
): Promise<void> {
  const archive = pack();
  const owner = { uid: AGENT_UID, gid: AGENT_UID };
  const parts = path.split('/');
  for (let i = 1; i < parts.length; i++) {
    archive.entry({ name: `${parts.slice(0, i).join('/')}/`, type: 'directory', mode: 0o700, ...owner });
  }
  archive.entry({ name: path, mode: 0o600, ...owner }, bytes);
  archive.finalize();
  await container.putArchive(archive as unknown as NodeJS.ReadableStream, { path: '/workspace' });
}

export interface OutboxResult {
  files: FileBytes[];
  /** Files left out, with the reason (too large, not a regular file, over the count, read cut). */
  skipped: string[];
  /** The read overran its budget or was stopped: files after `cut.at` were not looked at. */
  cut?: ReadCut;
}

/**
 * Reads the regular files of /workspace/outbox changed since `sinceMs`, through the engine's archive API.
 * Sizes come from the archive, not from the agent; files over `maxBytes` are skipped and named. Bounded
 * by `budget`: a file larger than what is left of it is not streamed, and the read is cut there.
 */
export async function readOutboxFiles(
  container: Dockerode.Container,
  sinceMs: number,
  maxBytes: number,
  maxFiles = 20,
  budget: ReadBudget = DEFAULT_READ_BUDGET,
): Promise<OutboxResult> {
  const result: OutboxResult = { files: [], skipped: [] };
  const read = await readArchive(container, '/workspace/outbox', budget, (header, body, next, archive) => {
    const name = header.name.replace(/^outbox\/?/, '');
    const size = header.size ?? 0;
    const changed = (header.mtime?.getTime() ?? 0) >= sinceMs - 1000;
    const keep = header.type === 'file' && name !== '' && !name.includes('/') && changed;
    const problem = !keep
      ? undefined
      : size > maxBytes
        ? 'over the size limit'
        : result.files.length >= maxFiles
          ? 'too many files'
          : undefined;
    if (problem) result.skipped.push(`${name} (${problem})`);
    if (size > archive.left()) {
      // Not streamed: a huge (or sparse) file would spend the budget on bytes never handed back.
      if (keep && !problem) result.skipped.push(`${name} (over what one outbox read may stream)`);
      archive.cut('bytes', name);
      return;
    }
    if (!keep || problem) {
      body.resume();
      body.on('end', next);
      return;
    }
    buffer(body).then((bytes) => {
      result.files.push({ name, bytes });
      next();
    }, next);
  });
  if (read.cut) {
    result.cut = read.cut;
    result.skipped.push(`any later files (${cutNote(read.cut)})`);
  }
  return result;
}

/** A read's cut, said briefly for the user (e.g. "the read was cut after 10 s"). */
export function cutNote(cut: ReadCut): string {
  if (cut.reason === 'stopped') return 'the read was stopped';
  if (cut.reason === 'time') return `the read was cut after ${Math.round(cut.ms / 1000)} s`;
  return `the read was cut after ${Math.round(cut.bytes / 1024 / 1024)} MiB`;
}
