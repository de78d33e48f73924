import type { Readable } from 'node:stream';
import type Dockerode from 'dockerode';
import { type Header, pack } from 'tar-stream';
import type { ConversationId } from '../../../src/contracts/conversation/id.js';
import { type ArchiveRead, type ReadCut, readArchive } from './archive-read.js';
import { messageOf, statusOf } from './docker-container.js';
import { conversationVolumes, mountedVolumes } from './docker-pool-claim.js';
import { SESSION_DIR, sandboxNames, volumeSpecs, WORKSPACE_DIR } from './docker-spec.js';

/**
 * A conversation's files from one engine's sandbox into another's, through the two engines' archive
 * APIs (what `docker cp` uses): the source's own container, stopped, is read (an engine reads a stopped
 * container's volumes and bind mounts, so plain volumes and size-capped images alike), and each entry is
 * written into the target's sandbox, made by its worker's driver (its caps made as for any sandbox) and
 * never started. Entries travel as tar headers: owners, modes and times kept, symbolic links stay links
 * (neither worker nor engine follows one: the engines resolve paths inside the containers), and the
 * stream is counted and cut at the budget, so a sparse file's zeros cannot run on.
 */

/** A copy's bounds: archive bytes streamed in all (headers included) and wall time. */
export interface CopyBudget {
  maxBytes: number;
  maxMs: number;
}

export interface SandboxSource {
  container: Dockerode.Container;
  /** /workspace is a size-capped image (a bind mount of its worker's loop mount), not a Docker volume. */
  capped: boolean;
}

/** An ext4 file system's own folder, at the top of every size-capped volume: never copied. */
const LOST_FOUND = 'lost+found';

/**
 * Pure: an entry of the archive of `dir` (named `<dir's base>/…`) as an entry relative to `dir`, or
 * undefined for what is not copied: the folder itself (the target's own stays, owned by the agent) and
 * a capped volume's lost+found. A hard link's target is relative the same way; a symbolic link's text
 * is kept as it is (a link, never followed).
 */
export function relocatedHeader(
  header: Header,
  base: string,
): (Partial<Header> & Pick<Header, 'name'>) | undefined {
  const name = under(header.name, base);
  if (!name || name === LOST_FOUND || name.startsWith(`${LOST_FOUND}/`)) return undefined;
  const moved: Partial<Header> & Pick<Header, 'name'> = {
    name,
    type: header.type ?? 'file',
    // Mode 0 (an agent's chmod 000) would read as unset to the packer: a type bit keeps it 0 in the
    // archive, which holds the low 12 bits only.
    mode: (header.mode ?? 0o644) || 0o100000,
    uid: header.uid ?? 0,
    gid: header.gid ?? 0,
    size: header.type === 'file' || header.type === 'contiguous-file' ? (header.size ?? 0) : 0,
    mtime: header.mtime ?? new Date(0),
  };
  if (header.type === 'symlink') moved.linkname = header.linkname ?? '';
  if (header.type === 'link') {
    const target = under(header.linkname ?? '', base);
    if (!target) return undefined;
    moved.linkname = target;
  }
  return moved;
}

/**
 * `name` without the leading `<base>/` (and a trailing `/`); undefined when outside it, the top, or not
 * a plain path down (a `..` or empty step: the target engine refuses those too, never reached).
 */
function under(name: string, base: string): string | undefined {
  const clean = name.replace(/^\.\//, '').replace(/\/+$/, '');
  if (!clean.startsWith(`${base}/`)) return undefined;
  const rest = clean.slice(base.length + 1);
  return rest.split('/').some((step) => step === '' || step === '.' || step === '..') ? undefined : rest;
}

/** Why a copy stopped, in the words of its line. */
export function cutReason(cut: ReadCut, budget: CopyBudget): string {
  if (cut.reason === 'bytes')
    return `more than ${Math.round(budget.maxBytes / 1024 / 1024)} MiB to copy (--max-mb): stopped`;
  if (cut.reason === 'time') return `the copy took longer than ${Math.round(budget.maxMs / 1000)} s: stopped`;
  return 'the copy was stopped';
}

/**
 * The conversation's sandbox on the source engine, stopped (no turn runs: the caller holds its lease),
 * or undefined when it has none. Whether its /workspace is capped comes from the container's mounts.
 */
export async function stoppedSource(
  docker: Dockerode,
  instance: string,
  conversation: ConversationId,
): Promise<SandboxSource | undefined> {
  const container = docker.getContainer(sandboxNames(instance, conversation).container);
  let info: Dockerode.ContainerInspectInfo;
  try {
    info = await container.inspect();
  } catch (err) {
    if (statusOf(err) === 404) return undefined;
    throw new Error(`could not inspect the source sandbox: ${messageOf(err)}`);
  }
  if (info.State.Running) {
    await container.stop({ t: 5 }).catch((err: unknown) => {
      if (statusOf(err) !== 304) throw new Error(`could not stop the source sandbox: ${messageOf(err)}`);
    });
  }
  const workspace = info.Mounts.find((m) => m.Destination === WORKSPACE_DIR);
  return { container, capped: workspace?.Type === 'bind' };
}

/** Whether the source engine holds any Docker volume of the conversation (files but no container). */
export async function hasVolumes(docker: Dockerode, instance: string, conversation: ConversationId) {
  for (const spec of volumeSpecs(instance, conversation)) {
    const found = await docker
      .getVolume(spec.Name as string)
      .inspect()
      .then(
        () => true,
        () => false,
      );
    if (found) return true;
  }
  return false;
}

/**
 * Copies /workspace and /session from the source sandbox into the target's (created, not started),
 * within `budget` for both together (`signal` stops it: the worker stops). Returns the bytes of file
 * contents copied; throws with the reason when cut or refused (the caller then discards the target's
 * copy: the source is not touched).
 */
export async function copySandboxFiles(
  source: SandboxSource,
  target: Dockerode.Container,
  budget: CopyBudget,
  signal?: AbortSignal,
): Promise<number> {
  const began = performance.now();
  let bytes = 0;
  for (const dir of [WORKSPACE_DIR, SESSION_DIR]) {
    const left = {
      maxBytes: budget.maxBytes - bytes,
      maxMs: Math.max(0, budget.maxMs - (performance.now() - began)),
    };
    const copied = await copyDir(source, target, dir, { ...left, signal });
    if (copied.cut) throw new Error(cutReason(copied.cut, budget));
    // An unmounted image reads as an empty folder: never taken for an empty workspace.
    if (source.capped && dir === WORKSPACE_DIR && !copied.lostFound)
      throw new Error(
        "the source's size-capped /workspace is not mounted there (is its worker running?): nothing copied",
      );
    bytes += copied.bytes;
  }
  return bytes;
}

interface DirCopy {
  bytes: number;
  lostFound: boolean;
  cut?: ReadCut;
}

async function copyDir(
  source: SandboxSource,
  target: Dockerode.Container,
  dir: string,
  budget: CopyBudget & { signal?: AbortSignal | undefined },
): Promise<DirCopy> {
  const base = dir.slice(1);
  const archive = pack();
  const failed = new AbortController();
  let putError: Error | undefined;
  // tar-stream's Pack is a streamx Readable: compatible at run time, not by its type.
  const put = target
    .putArchive(archive as unknown as NodeJS.ReadableStream, { path: dir })
    .catch((err: unknown) => {
      putError = new Error(`the target engine refused the files: ${messageOf(err)}`);
      failed.abort();
    });
  const result: DirCopy = { bytes: 0, lostFound: false };
  const read = await readArchive(
    source.container,
    dir,
    { ...budget, signal: budget.signal ? AbortSignal.any([failed.signal, budget.signal]) : failed.signal },
    (h, body, next, r) => copyEntry({ header: h, body, next, read: r }, base, archive, result),
  ).catch((err: unknown) => {
    archive.destroy();
    throw new Error(`could not read the source's ${dir}: ${messageOf(err)}`);
  });
  if (read.cut) {
    // The target's request ends with its stream (its partial copy is the caller's to discard).
    archive.destroy();
    await Promise.race([put, new Promise((resolve) => setTimeout(resolve, 10_000).unref())]);
    if (read.cut.reason === 'stopped' && putError) throw putError;
    return { ...result, cut: read.cut };
  }
  archive.finalize();
  await put;
  if (putError) throw putError;
  return result;
}

function copyEntry(
  entry: { header: Header; body: Readable; next: () => void; read: ArchiveRead },
  base: string,
  archive: ReturnType<typeof pack>,
  result: DirCopy,
): void {
  const { header, body, next, read } = entry;
  if (under(header.name, base) === LOST_FOUND) result.lostFound = true;
  const moved = relocatedHeader(header, base);
  if (!moved) {
    body.on('end', next);
    body.resume();
    return;
  }
  const size = moved.size ?? 0;
  if (size > read.left()) {
    read.cut('bytes', moved.name);
    return;
  }
  const sink = archive.entry(moved, (err) => {
    if (err) read.cut('stopped', moved.name);
    else {
      result.bytes += size;
      next();
    }
  });
  const writable = sink as unknown as NodeJS.WritableStream;
  if (size > 0) body.pipe(writable);
  else {
    body.resume();
    // An empty file's entry waits for its end (other kinds have no body and end by themselves).
    if (moved.type === 'file' || moved.type === 'contiguous-file') writable.end();
  }
}

/**
 * Removes the conversation's sandbox and Docker volumes from an engine (the source, once the home has
 * moved), the warm pool's volumes a claimed sandbox kept its files in included. Size-capped images live
 * in that host's worker's disk folder: only it frees them.
 */
export async function removeConversation(
  docker: Dockerode,
  instance: string,
  conversation: ConversationId,
): Promise<void> {
  const names = sandboxNames(instance, conversation);
  const mounted = await mountedVolumes(docker, names.container).catch(() => []);
  await docker
    .getContainer(names.container)
    .remove({ force: true })
    .catch(() => undefined);
  const volumes = await conversationVolumes(docker, instance, names, mounted).catch(() =>
    volumeSpecs(instance, conversation).map((spec) => spec.Name as string),
  );
  for (const volume of volumes) {
    await docker
      .getVolume(volume)
      .remove()
      .catch(() => undefined);
  }
}
