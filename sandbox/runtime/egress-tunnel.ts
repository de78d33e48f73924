import { createServer, type Server, type Socket } from 'node:net';
import {
  EGRESS_MAX_STREAMS,
  type EgressFrame,
  type EgressStreamFrame,
} from '../../src/contracts/protocol/egress.js';
import { EgressStreams } from '../../src/contracts/protocol/egress-streams.js';

/**
 * The sandbox's end of the egress tunnel (src/contracts/protocol/egress.ts): a listener on the sandbox's own
 * loopback whose connections become frames on the protocol stream. It decides nothing: the worker
 * and the egress proxy behind it check every stream; this only moves bytes, and names the skill whose
 * tools (by their uid) opened a stream.
 */
export class EgressTunnelEnd {
  private readonly streams: EgressStreams;
  private server: Server | undefined;
  private next = 1;

  constructor(
    private readonly port: number,
    private readonly write: (frame: EgressFrame) => void,
    /** Which skill's tools opened this connection (by its uid), if any: the open frame says so. */
    private readonly skillOf?: (socket: Socket) => string | undefined,
  ) {
    this.streams = new EgressStreams(write);
  }

  /** Listens on 127.0.0.1:port; a failure is reported, not thrown (the turn works, egress does not). */
  listen(onError: (message: string) => void): void {
    const server = createServer({ allowHalfOpen: true }, (socket) => this.accept(socket));
    server.on('error', (error) =>
      onError(`egress tunnel cannot listen on port ${this.port}: ${error.message}`),
    );
    server.listen(this.port, '127.0.0.1');
    this.server = server;
  }

  /** A frame from the worker about an open stream. */
  receive(frame: EgressStreamFrame): void {
    this.streams.receive(frame);
  }

  /** Ends every stream (a job ended: its tools are gone, and so is the worker's lease). */
  closeAll(): void {
    this.streams.closeAll();
  }

  close(): void {
    this.closeAll();
    this.server?.close();
  }

  private accept(socket: Socket): void {
    if (this.streams.size >= EGRESS_MAX_STREAMS) {
      socket.destroy();
      return;
    }
    const id = this.next;
    this.next = this.next >= 2 ** 31 ? 1 : this.next + 1;
    const skill = this.skillOf?.(socket);
    this.write({ type: 'egress_open', stream: id, ...(skill ? { skill } : {}) });
    this.streams.add(id, socket);
  }
}
