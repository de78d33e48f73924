import type { Duplex } from 'node:stream';
import { dataFrames, type EgressStreamFrame } from './egress.js';

/**
 * The open streams of one end of the egress tunnel (the runtime's and the worker's are alike): each
 * connection's bytes, its half-close and its close become frames to the other end, and the other
 * end's frames are applied to it. Connections should allow half-open sockets, so a client that sends
 * its request and then half-closes still gets the answer.
 */
export class EgressStreams {
  private readonly streams = new Map<number, Duplex>();

  constructor(private readonly send: (frame: EgressStreamFrame) => void) {}

  get size(): number {
    return this.streams.size;
  }

  has(id: number): boolean {
    return this.streams.has(id);
  }

  /** Wires a connection to stream `id`. */
  add(id: number, socket: Duplex): void {
    this.streams.set(id, socket);
    const listed = () => this.streams.get(id) === socket;
    socket.on('data', (chunk: Buffer) => {
      for (const frame of dataFrames(id, chunk)) this.send(frame);
    });
    socket.on('end', () => {
      if (listed()) this.send({ type: 'egress_end', stream: id });
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      // Still listed: this side ended it (the other side's close removes it first).
      if (!listed()) return;
      this.streams.delete(id);
      this.send({ type: 'egress_close', stream: id });
    });
  }

  /** A frame from the other end; frames of streams not open (closed already) are dropped. */
  receive(frame: EgressStreamFrame): void {
    const socket = this.streams.get(frame.stream);
    if (!socket) return;
    if (frame.type === 'egress_data') {
      socket.write(Buffer.from(frame.data, 'base64'));
      return;
    }
    if (frame.type === 'egress_end') {
      socket.end();
      return;
    }
    // Closed by the other end: what is already written still goes out, then the connection goes.
    this.streams.delete(frame.stream);
    if (socket.writableFinished) {
      socket.destroy();
      return;
    }
    socket.once('finish', () => socket.destroy());
    if (!socket.writableEnded) socket.end();
  }

  /** Drops every stream at once (the lease or the job they belong to ended). */
  closeAll(): void {
    for (const socket of this.streams.values()) socket.destroy();
    this.streams.clear();
  }
}
