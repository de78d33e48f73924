import { randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import type Dockerode from 'dockerode';
import type { ConversationId } from '../../../src/contracts/conversation/id.js';
import type { Logger } from '../../../src/contracts/log/logger.js';
import { RuntimeToWorker, type WorkerToRuntime } from '../../../src/contracts/protocol/agent.js';
import { FrameJoiner } from '../../../src/contracts/protocol/frames.js';
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
/** Default of what is held until the first onMessage listener (SANDBOT_PROTOCOL_BUFFER_BYTES). */
export const DEFAULT_BUFFER_BYTES = 4 * 1024 * 1024;

type MessageListener = (result: LineResult<RuntimeToWorker>) => void;
type CloseListener = (reason: string) => void;

/**
 * One attached stream to a sandbox's runtime. stdout lines become protocol results (parsed, capped;
 * long lines joined from their parts with this session's frame key, protocol/frames.ts); output that
 * arrives before anyone listens is kept up to `bufferBytes`, so nothing between start and the
 * caller's first onMessage is lost. Beyond that it is dropped and one error result says so: the
 * worker's memory for a sandbox is bounded whatever the sandbox sends.
 */
export class AttachedSession implements SandboxSession {
  private readonly messageListeners = new Set<MessageListener>();
  private readonly closeListeners = new Set<CloseListener>();
  private readonly early: LineResult<RuntimeToWorker>[] = [];
  private earlyBytes = 0;
  private earlyDropped = 0;
  private closedReason: string | undefined;
  private stderrLogged = 0;
  /** The key the runtime marks its long lines' parts with, once it got this session's hello. */
  readonly frameKey = randomBytes(16).toString('hex');
  /**
   * `ready` lines that are the runtime's answers to the session itself (its start-up line, when this
   * session started it; the answer to greet()): not a turn's business, so not passed on. Any other is,
   * as the foreign line it is (or the answer to a caller's own hello).
   */
  private readiesDue = 0;
  /** Set by the open that started the container (see SandboxSession.fresh). */
  fresh = false;

  constructor(
    readonly conversation: ConversationId,
    private readonly socket: NodeJS.ReadWriteStream & { destroy?: () => void; ref?(): void; unref?(): void },
    demux: Demux,
    maxLineBytes: number,
    private readonly logger?: Logger,
    /** The engine's id of the container (a recreated sandbox has a new one); '' when not known. */
    readonly containerId = '',
    private readonly bufferBytes = DEFAULT_BUFFER_BYTES,
  ) {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    const joiner = new FrameJoiner(this.frameKey, maxLineBytes);
    const decoder = new LineDecoder(RuntimeToWorker, maxLineBytes, (line) => joiner.accept(line));
    const utf8 = new StringDecoder('utf8');
    stdout.on('data', (chunk: Buffer) => {
      for (const result of decoder.push(utf8.write(chunk))) {
        if (result.ok && result.value.type === 'ready' && this.readiesDue > 0) this.readiesDue -= 1;
        else this.emit(result);
      }
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

  /** The container was started after this session attached: its runtime's start-up `ready` comes here. */
  expectStartupReady(): void {
    this.readiesDue += 1;
  }

  /** Sends `hello` with this session's frame key: once after attaching, with the runtime started. */
  greet(): void {
    this.readiesDue += 1;
    this.send({ type: 'hello', frameKey: this.frameKey });
  }

  /** Whether the sandbox's stdin is backed up (its runtime reads slower than the worker writes). */
  blocked(): boolean {
    return (this.socket as { writableNeedDrain?: boolean }).writableNeedDrain === true;
  }

  /** Calls `listener` once the sandbox's stdin has drained. */
  onDrain(listener: () => void): () => void {
    this.socket.once('drain', listener);
    return () => this.socket.removeListener('drain', listener);
  }

  onMessage(listener: MessageListener): () => void {
    this.messageListeners.add(listener);
    if (this.early.length > 0) {
      // Deliver after registration returns, in order, before anything newer (I/O callbacks run later).
      queueMicrotask(() => {
        const held = this.early.splice(0);
        this.earlyBytes = 0;
        this.earlyDropped = 0;
        for (const result of held) this.emit(result);
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
      this.hold(result);
      return;
    }
    for (const listener of this.messageListeners) listener(result);
  }

  /** Keeps a result for the first listener, within the byte budget (then only counts what it drops). */
  private hold(result: LineResult<RuntimeToWorker>): void {
    const bytes = result.bytes ?? 0;
    if (this.earlyDropped === 0 && this.earlyBytes + bytes <= this.bufferBytes) {
      this.earlyBytes += bytes;
      this.early.push(result);
      return;
    }
    this.earlyDropped += 1;
    if (this.earlyDropped === 1) {
      // One result stands for the dropped ones, so the listener still counts them as bad lines.
      this.early.push({
        ok: false,
        error: `output before the first listener over ${this.bufferBytes} bytes dropped`,
        bytes,
      });
    }
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
  bufferBytes?: number,
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
    bufferBytes,
  );
}
