import { PassThrough } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import type Dockerode from 'dockerode';
import type { ConversationId } from '../../../src/contracts/conversation/id.js';
import type { Logger } from '../../../src/contracts/log/logger.js';
import { RuntimeToWorker, type WorkerToRuntime } from '../../../src/contracts/protocol/agent.js';
import { encodeLine, LineDecoder, type LineResult } from '../../../src/contracts/protocol/lines.js';
import type { SandboxSession } from './types.js';

/** Splits the engine's multiplexed attach stream (8-byte frame headers) into stdout and stderr. */
export type Demux = (
  stream: NodeJS.ReadableStream,
  stdout: NodeJS.WritableStream,
  stderr: NodeJS.WritableStream,
) => void;

/** stderr is for humans (crash traces): logged, capped, never parsed. */
const STDERR_LOG_BUDGET_BYTES = 64 * 1024;
const STDERR_CHUNK_CHARS = 2000;
/** Results held until the first onMessage listener; beyond this the runtime is flooding. */
const MAX_BUFFERED_RESULTS = 1000;

type MessageListener = (result: LineResult<RuntimeToWorker>) => void;
type CloseListener = (reason: string) => void;

/**
 * One attached stream to a sandbox's runtime. stdout lines become protocol results (parsed, capped);
 * output that arrives before anyone listens is kept (bounded), so nothing between start and the
 * caller's first onMessage is lost.
 */
export class AttachedSession implements SandboxSession {
  private readonly messageListeners = new Set<MessageListener>();
  private readonly closeListeners = new Set<CloseListener>();
  private readonly early: LineResult<RuntimeToWorker>[] = [];
  private closedReason: string | undefined;
  private stderrLogged = 0;

  constructor(
    readonly conversation: ConversationId,
    private readonly socket: NodeJS.ReadWriteStream & { destroy?: () => void; ref?(): void; unref?(): void },
    demux: Demux,
    maxLineBytes: number,
    private readonly logger?: Logger,
    /** The engine's id of the container (a recreated sandbox has a new one); '' when not known. */
    readonly containerId = '',
  ) {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    const decoder = new LineDecoder(RuntimeToWorker, maxLineBytes);
    const utf8 = new StringDecoder('utf8');
    stdout.on('data', (chunk: Buffer) => {
      for (const result of decoder.push(utf8.write(chunk))) this.emit(result);
    });
    stderr.on('data', (chunk: Buffer) => this.logStderr(chunk));
    demux(socket, stdout, stderr);
    socket.on('end', () => this.finish('the sandbox output ended (container stopped or engine gone)'));
    socket.on('close', () => this.finish('the attach connection closed'));
    socket.on('error', (err: Error) => this.finish(`the attach connection failed: ${err.message}`));
  }

  send(message: WorkerToRuntime): void {
    if (this.closedReason !== undefined) {
      throw new Error(
        `the sandbox of ${this.conversation} is detached (${this.closedReason}): open it again`,
      );
    }
    this.socket.write(encodeLine(message));
  }

  onMessage(listener: MessageListener): () => void {
    this.messageListeners.add(listener);
    if (this.early.length > 0) {
      // Deliver after registration returns, in order, before anything newer (I/O callbacks run later).
      queueMicrotask(() => {
        for (const result of this.early.splice(0)) this.emit(result);
      });
    }
    return () => this.messageListeners.delete(listener);
  }

  onClose(listener: CloseListener): () => void {
    this.closeListeners.add(listener);
    const reason = this.closedReason;
    if (reason !== undefined) queueMicrotask(() => listener(reason));
    return () => this.closeListeners.delete(listener);
  }

  /** Lets an idle connection not keep the process alive (unref), or again (ref). */
  unref(): void {
    this.socket.unref?.();
  }

  ref(): void {
    this.socket.ref?.();
  }

  async close(): Promise<void> {
    this.finish('detached');
    this.socket.destroy?.();
  }

  private emit(result: LineResult<RuntimeToWorker>): void {
    if (this.messageListeners.size === 0 || this.early.length > 0) {
      if (this.early.length < MAX_BUFFERED_RESULTS) this.early.push(result);
      return;
    }
    for (const listener of this.messageListeners) listener(result);
  }

  private finish(reason: string): void {
    if (this.closedReason !== undefined) return;
    this.closedReason = reason;
    for (const listener of this.closeListeners) listener(reason);
  }

  private logStderr(chunk: Buffer): void {
    if (this.stderrLogged >= STDERR_LOG_BUDGET_BYTES) return;
    this.stderrLogged += chunk.length;
    const text = chunk.toString('utf8').slice(0, STDERR_CHUNK_CHARS);
    this.logger?.warn({ conversation: this.conversation, stderr: text }, 'sandbox stderr');
    if (this.stderrLogged >= STDERR_LOG_BUDGET_BYTES) {
      this.logger?.warn({ conversation: this.conversation }, 'sandbox stderr: further output not logged');
    }
  }
}

/** Attaches to a container's runtime (before its start, so nothing it prints at start-up is lost). */
export async function attachRuntime(
  docker: Dockerode,
  container: Dockerode.Container,
  conversation: ConversationId,
  maxLineBytes: number,
  logger?: Logger,
  containerId?: string,
): Promise<AttachedSession> {
  const socket = await container.attach({
    stream: true,
    stdin: true,
    stdout: true,
    stderr: true,
    hijack: true,
  });
  return new AttachedSession(
    conversation,
    socket,
    (stream, out, err) => docker.modem.demuxStream(stream, out, err),
    maxLineBytes,
    logger,
    containerId,
  );
}
