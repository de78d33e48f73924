import { buffer } from 'node:stream/consumers';
import type Dockerode from 'dockerode';
import { extract, pack } from 'tar-stream';

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
  /** Files left out, with the reason (too large, not a regular file, over the count). */
  skipped: string[];
}

/**
 * Reads the regular files of /workspace/outbox changed since `sinceMs`, through the engine's archive API.
 * Sizes come from the archive, not from the agent; files over `maxBytes` are skipped and named.
 */
export async function readOutboxFiles(
  container: Dockerode.Container,
  sinceMs: number,
  maxBytes: number,
  maxFiles = 20,
): Promise<OutboxResult> {
  let stream: NodeJS.ReadableStream;
  try {
    stream = await container.getArchive({ path: '/workspace/outbox' });
  } catch (error) {
    if ((error as { statusCode?: number }).statusCode === 404) return { files: [], skipped: [] };
    throw error;
  }
  const result: OutboxResult = { files: [], skipped: [] };
  const reader = extract();
  await new Promise<void>((resolve, reject) => {
    reader.on('entry', (header, body, next) => {
      const name = header.name.replace(/^outbox\/?/, '');
      const changed = (header.mtime?.getTime() ?? 0) >= sinceMs - 1000;
      const keep = header.type === 'file' && name !== '' && !name.includes('/') && changed;
      if (!keep || (header.size ?? 0) > maxBytes || result.files.length >= maxFiles) {
        if (keep)
          result.skipped.push(
            `${name} (${(header.size ?? 0) > maxBytes ? 'over the size limit' : 'too many files'})`,
          );
        body.resume();
        body.on('end', next);
        return;
      }
      buffer(body).then((bytes) => {
        result.files.push({ name, bytes });
        next();
      }, next);
    });
    reader.on('finish', resolve);
    reader.on('error', reject);
    stream.pipe(reader);
  });
  return result;
}
