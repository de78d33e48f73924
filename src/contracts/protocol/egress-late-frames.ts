import { EGRESS_CHUNK_BYTES, EGRESS_WINDOW_BYTES, type EgressStreamFrame } from './egress.js';

/** Streams closed by this side whose late frames are still expected: the most recent ones. */
const REMEMBERED = 256;

interface Allowance {
  /** Bytes the other end may still acknowledge: what this side had sent it unacknowledged. */
  ackBytes: number;
  /** Bytes the other end may still have had in flight: the window, less what this side held. */
  dataBytes: number;
  /** Its egress_end and egress_close, sent before this side's close reached it. */
  ends: number;
}

/**
 * Which frames for a stream that is not open an honest other end can still send: when this side
 * closes a stream (or declines its open), the other end's data, acknowledgements, end and close sent
 * before that close reached it are still on their way, at most what flow control allowed. Every other
 * frame for a stream that is not open (never opened, closed by the other end itself, or past that
 * allowance) is invalid: forged, or a broken end. Pure bookkeeping, bounded (REMEMBERED streams).
 */
export class LateFrames {
  private readonly closed = new Map<number, Allowance>();

  /** This side closed stream `id`, with `unacked` bytes sent and `unwritten` received not yet written. */
  closedHere(id: number, unacked: number, unwritten: number): void {
    this.closed.delete(id);
    this.closed.set(id, {
      ackBytes: unacked,
      dataBytes: Math.max(0, EGRESS_WINDOW_BYTES + EGRESS_CHUNK_BYTES - unwritten),
      ends: 2,
    });
    if (this.closed.size > REMEMBERED) {
      const oldest = this.closed.keys().next().value;
      if (oldest !== undefined) this.closed.delete(oldest);
    }
  }

  /** Stream `id` is open (again): what was expected of its earlier use is not any more. */
  opened(id: number): void {
    this.closed.delete(id);
  }

  /** Why a frame for a stream that is not open is invalid; undefined when it is an expected late one. */
  judge(frame: EgressStreamFrame): string | undefined {
    const allowance = this.closed.get(frame.stream);
    if (!allowance) return `${frame.type} for stream ${frame.stream}, which is not open`;
    if (frame.type === 'egress_ack') {
      if (frame.bytes > allowance.ackBytes) return lateReason(frame, 'acknowledges more than was sent');
      allowance.ackBytes -= frame.bytes;
      return undefined;
    }
    if (frame.type === 'egress_data') {
      const bytes = Math.floor((frame.data.length * 3) / 4);
      if (bytes > allowance.dataBytes) return lateReason(frame, 'sends past the flow-control window');
      allowance.dataBytes -= bytes;
      return undefined;
    }
    if (allowance.ends === 0) return lateReason(frame, 'ends it again');
    allowance.ends -= 1;
    return undefined;
  }
}

function lateReason(frame: EgressStreamFrame, what: string): string {
  return `${frame.type} for closed stream ${frame.stream} ${what}`;
}
