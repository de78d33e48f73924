import type { Duplex } from 'node:stream';
import { dataFrames, EGRESS_CHUNK_BYTES, EGRESS_WINDOW_BYTES, type EgressStreamFrame } from './egress.js';
import { LateFrames } from './egress-late-frames.js';

interface Stream {
  socket: Duplex;
  /** Bytes sent to the other end that it has not acknowledged yet (this side pauses at the window). */
  unacked: number;
  /** Bytes the other end sent that this side has not yet written on (and so not acknowledged). */
  unwritten: number;
}

/**
 * The open streams of one end of the egress tunnel (the runtime's and the worker's are alike): each
 * connection's bytes, its half-close and its close become frames to the other end, and the other
 * end's frames are applied to it. Flow control: a side sends at most EGRESS_WINDOW_BYTES ahead of the
 * other's acknowledgements, and closes a stream whose other end sends past that, so neither end's
 * memory is at the other's mercy. Connections should allow half-open sockets, so a client that sends
 * its request and then half-closes still gets the answer.
 */
export class EgressStreams {
  private readonly streams = new Map<number, Stream>();
  private waitingForDrain = false;
  private readonly late = new LateFrames();

  /**
   * `flow`: where frames go through a stream that can back up (the worker's writes to a sandbox's
   * stdin), whether it has, and a call once it drained. Connections are then read only while it has
   * not: the worker stops reading, it does not buffer. This holds whatever acknowledgements the other
   * end sends (forged ones too); the window only keeps one stream from starving the others.
   * `onInvalid`: told of each frame no honest other end sends (for a stream not open and not
   * expected late, or acknowledging more than was sent); such frames are dropped all the same.
   */
  constructor(
    private readonly send: (frame: EgressStreamFrame) => void,
    private readonly flow?: { blocked(): boolean; onDrain(listener: () => void): void },
    private readonly onInvalid?: (reason: string) => void,
  ) {}

  get size(): number {
    return this.streams.size;
  }

  has(id: number): boolean {
    return this.streams.has(id);
  }

  /** Wires a connection to stream `id`. */
  add(id: number, socket: Duplex): void {
    const stream: Stream = { socket, unacked: 0, unwritten: 0 };
    this.streams.set(id, stream);
    this.late.opened(id);
    const listed = () => this.streams.get(id) === stream;
    socket.on('data', (chunk: Buffer) => {
      for (const frame of dataFrames(id, chunk)) this.send(frame);
      stream.unacked += chunk.length;
      if (stream.unacked >= EGRESS_WINDOW_BYTES) socket.pause();
      if (this.flow?.blocked()) this.holdUntilDrained();
    });
    socket.on('end', () => {
      if (listed()) this.send({ type: 'egress_end', stream: id });
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      // Still listed: this side ended it (the other side's close removes it first).
      if (!listed()) return;
      this.streams.delete(id);
      this.late.closedHere(id, stream.unacked, stream.unwritten);
      this.send({ type: 'egress_close', stream: id });
    });
  }

  /** A frame from the other end; frames of streams not open (closed already) are dropped. */
  receive(frame: EgressStreamFrame): void {
    const stream = this.streams.get(frame.stream);
    if (!stream) {
      const invalid = this.late.judge(frame);
      if (invalid) this.onInvalid?.(invalid);
      return;
    }
    const { socket } = stream;
    switch (frame.type) {
      case 'egress_data': {
        const bytes = Buffer.from(frame.data, 'base64');
        stream.unwritten += bytes.length;
        // Past the window by more than a frame's rounding: the other end ignores acknowledgements.
        if (stream.unwritten > EGRESS_WINDOW_BYTES + EGRESS_CHUNK_BYTES) {
          this.refuse(frame.stream, 'the other end sent past the flow-control window');
          return;
        }
        socket.write(bytes, () => {
          stream.unwritten -= bytes.length;
          if (this.streams.get(frame.stream) === stream && bytes.length > 0) {
            this.send({ type: 'egress_ack', stream: frame.stream, bytes: bytes.length });
          }
        });
        return;
      }
      case 'egress_ack':
        if (frame.bytes > stream.unacked)
          this.onInvalid?.(`egress_ack for stream ${frame.stream} acknowledges more than was sent`);
        stream.unacked = Math.max(0, stream.unacked - frame.bytes);
        if (!this.waitingForDrain && stream.unacked < EGRESS_WINDOW_BYTES && socket.isPaused())
          socket.resume();
        return;
      case 'egress_end':
        socket.end();
        return;
      case 'egress_close':
        // Closed by the other end: what is already written still goes out, then the connection goes.
        this.streams.delete(frame.stream);
        if (socket.writableFinished) {
          socket.destroy();
          return;
        }
        socket.once('finish', () => socket.destroy());
        if (!socket.writableEnded) socket.end();
        return;
    }
  }

  /** Drops every stream at once (the lease or the job they belong to ended). */
  closeAll(): void {
    for (const { socket } of this.streams.values()) socket.destroy();
    this.streams.clear();
  }

  /** Pauses every connection until the stream toward the other end drains, then resumes those in window. */
  private holdUntilDrained(): void {
    for (const { socket } of this.streams.values()) socket.pause();
    if (this.waitingForDrain || !this.flow) return;
    this.waitingForDrain = true;
    this.flow.onDrain(() => {
      this.waitingForDrain = false;
      for (const { socket, unacked } of this.streams.values()) {
        if (unacked < EGRESS_WINDOW_BYTES && socket.isPaused()) socket.resume();
      }
    });
  }

  /** Closes a stream the other end opened without wiring it (a limit): its early frames are expected. */
  decline(id: number, reason: string): void {
    this.late.closedHere(id, 0, 0);
    this.send({ type: 'egress_close', stream: id, reason });
  }

  private refuse(id: number, reason: string): void {
    const stream = this.streams.get(id);
    this.streams.delete(id);
    stream?.socket.destroy();
    if (stream) this.late.closedHere(id, stream.unacked, stream.unwritten);
    this.send({ type: 'egress_close', stream: id, reason });
  }
}
