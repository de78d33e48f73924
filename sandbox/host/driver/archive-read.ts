import type { Readable } from 'node:stream';
import type Dockerode from 'dockerode';
import { extract, type Header } from 'tar-stream';

/**
 * What one read of a sandbox's files through the engine's archive API may cost. The archive holds
 * every file's apparent size in full (a sparse 4 GiB file streams 4 GiB of zeros), so the bound is on
 * bytes streamed, and spending it aborts the request: skipping the rest of the stream would still
 * make the engine send it.
 */
export interface ReadBudget {
  /** Archive bytes streamed at most (tar headers and padding included). */
  maxBytes: number;
  maxMs: number;
  /** Aborts the read (its sandbox is stopped or removed, or the worker stops). */
  signal?: AbortSignal;
}

/** Default budget of one read: a few seconds of streaming at the slowest layer (gVisor, ≈76 MB/s). */
export const DEFAULT_READ_BUDGET: ReadBudget = { maxBytes: 256 * 1024 * 1024, maxMs: 10_000 };

/** Why and where a read was cut short; later entries of the archive were not looked at. */
export interface ReadCut {
  reason: 'bytes' | 'time' | 'stopped';
  /** Archive bytes streamed before the cut. */
  bytes: number;
  ms: number;
  /** The entry (relative to the archive's root) that did not fit the budget, when one did not. */
  at?: string;
}

/** What an entry handler may ask of the read in progress. */
export interface ArchiveRead {
  /** Budget bytes left: an entry larger than this cannot be streamed through. */
  left(): number;
  /** Ends the read here (the request is aborted); `next` need not be called after. */
  cut(reason: ReadCut['reason'], at?: string): void;
  /** Ends the read here as done, not cut: the handler has what it wanted. */
  end(): void;
}

export type EntryHandler = (header: Header, body: Readable, next: () => void, read: ArchiveRead) => void;

export interface ArchiveResult {
  /** The engine had no such path (404). */
  missing: boolean;
  cut?: ReadCut;
}

/**
 * Streams the archive of `path` through `onEntry` within `budget`. Resolves when the archive ends or
 * is cut (no entry is handed over after a cut); rejects on an engine or archive error.
 */
export async function readArchive(
  container: Dockerode.Container,
  path: string,
  budget: ReadBudget,
  onEntry: EntryHandler,
): Promise<ArchiveResult> {
  const began = performance.now();
  const controller = new AbortController();
  let streamed = 0;
  let cut: ReadCut | undefined;
  let ended = false;
  let onCut: () => void = () => undefined;
  const stop = (reason: ReadCut['reason'] | 'done', at?: string) => {
    if (cut || ended) return;
    if (reason === 'done') ended = true;
    else cut = { reason, bytes: streamed, ms: Math.round(performance.now() - began), ...(at ? { at } : {}) };
    controller.abort();
    onCut();
  };
  const stopped = () => stop('stopped');
  if (budget.signal?.aborted) stop('stopped');
  budget.signal?.addEventListener('abort', stopped, { once: true });
  const timer = setTimeout(() => stop('time'), budget.maxMs);
  const read: ArchiveRead = { left: () => budget.maxBytes - streamed, cut: stop, end: () => stop('done') };
  try {
    if (cut) return { missing: false, cut };
    const cutMeanwhile = new Promise<undefined>((resolve) => {
      onCut = () => resolve(undefined);
    });
    let stream: Readable | undefined;
    try {
      // dockerode's types omit it, but getArchive takes { abortSignal } and cancels the request with it.
      const request = container.getArchive({ path, abortSignal: controller.signal } as { path: string });
      request.catch(() => undefined);
      stream = (await Promise.race([request, cutMeanwhile])) as Readable | undefined;
    } catch (error) {
      if (cut) return { missing: false, cut };
      if ((error as { statusCode?: number }).statusCode === 404) return { missing: true };
      throw error;
    }
    if (stream === undefined || cut) {
      stream?.destroy();
      return { missing: false, cut };
    }
    await pump(stream, onEntry, read, {
      counted: (bytes) => {
        streamed += bytes;
        if (streamed > budget.maxBytes) stop('bytes');
      },
      isCut: () => cut !== undefined || ended,
      onCut: (listener) => {
        onCut = listener;
      },
    });
    return { missing: false, ...(cut ? { cut } : {}) };
  } finally {
    clearTimeout(timer);
    budget.signal?.removeEventListener('abort', stopped);
  }
}

interface PumpHooks {
  counted(bytes: number): void;
  isCut(): boolean;
  onCut(listener: () => void): void;
}

function pump(stream: Readable, onEntry: EntryHandler, read: ArchiveRead, hooks: PumpHooks): Promise<void> {
  const reader = extract();
  return new Promise<void>((resolve, reject) => {
    const ended = () => {
      stream.destroy();
      reader.destroy();
      resolve();
    };
    hooks.onCut(ended);
    const failed = (error: unknown) => (hooks.isCut() ? ended() : reject(error));
    stream.on('data', (chunk: Buffer) => hooks.counted(chunk.length));
    stream.on('error', failed);
    reader.on('entry', (header, body, next) => {
      // Destroying the reader on a cut destroys the body too: that error is the cut's, not news.
      body.on('error', () => undefined);
      if (hooks.isCut()) return;
      onEntry(header, body as unknown as Readable, next, read);
    });
    reader.on('finish', resolve);
    reader.on('error', failed);
    stream.pipe(reader as unknown as NodeJS.WritableStream);
  });
}
