import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import {
  dataFrames,
  EGRESS_CHUNK_BYTES,
  EGRESS_WINDOW_BYTES,
  type EgressStreamFrame,
} from '../../src/contracts/protocol/egress.js';
import { EgressStreams } from '../../src/contracts/protocol/egress-streams.js';

const tick = () => new Promise((resolve) => setImmediate(resolve));
const dataBytes = (frames: EgressStreamFrame[]) =>
  frames.reduce((n, f) => n + (f.type === 'egress_data' ? Buffer.from(f.data, 'base64').length : 0), 0);

describe('egress stream flow control', () => {
  it('sends at most a window ahead of the other end’s acknowledgements, then goes on as they come', async () => {
    const sent: EgressStreamFrame[] = [];
    const streams = new EgressStreams((frame) => sent.push(frame));
    const source = new PassThrough();
    streams.add(1, source);
    // 1 MiB offered at once; nothing acknowledged yet.
    for (let i = 0; i < 64; i++) source.write(Buffer.alloc(EGRESS_CHUNK_BYTES, i));
    for (let i = 0; i < 20; i++) await tick();
    const first = dataBytes(sent);
    expect(first).toBeGreaterThanOrEqual(EGRESS_WINDOW_BYTES);
    expect(first).toBeLessThanOrEqual(EGRESS_WINDOW_BYTES + EGRESS_CHUNK_BYTES);
    // Acknowledging what arrived lets the rest through.
    for (let round = 0; round < 10 && dataBytes(sent) < 64 * EGRESS_CHUNK_BYTES; round++) {
      streams.receive({ type: 'egress_ack', stream: 1, bytes: EGRESS_WINDOW_BYTES });
      for (let i = 0; i < 20; i++) await tick();
    }
    expect(dataBytes(sent)).toBe(64 * EGRESS_CHUNK_BYTES);
  });

  it('acknowledges what it wrote on, and closes a stream whose other end sends past the window', async () => {
    const sent: EgressStreamFrame[] = [];
    const streams = new EgressStreams((frame) => sent.push(frame));
    const sink = new PassThrough({ highWaterMark: EGRESS_CHUNK_BYTES });
    streams.add(2, sink);
    // Read by nobody: the sink takes a little, then holds the rest unwritten.
    for (const frame of dataFrames(2, Buffer.alloc(EGRESS_CHUNK_BYTES))) streams.receive(frame);
    await tick();
    expect(sent).toContainEqual({ type: 'egress_ack', stream: 2, bytes: EGRESS_CHUNK_BYTES });
    for (const frame of dataFrames(2, Buffer.alloc(EGRESS_WINDOW_BYTES + 2 * EGRESS_CHUNK_BYTES))) {
      streams.receive(frame);
    }
    expect(sent).toContainEqual({
      type: 'egress_close',
      stream: 2,
      reason: 'the other end sent past the flow-control window',
    });
    expect(sink.destroyed).toBe(true);
    expect(streams.has(2)).toBe(false);
  });
});
