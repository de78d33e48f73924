import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import {
  dataFrames,
  EGRESS_CHUNK_BYTES,
  EGRESS_WINDOW_BYTES,
  type EgressStreamFrame,
} from '../../src/contracts/protocol/egress.js';
import { LateFrames } from '../../src/contracts/protocol/egress-late-frames.js';
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

describe('invalid egress frames', () => {
  const setup = () => {
    const invalid: string[] = [];
    const sent: EgressStreamFrame[] = [];
    const streams = new EgressStreams(
      (frame) => sent.push(frame),
      undefined,
      (reason) => invalid.push(reason),
    );
    return { invalid, sent, streams };
  };

  it('reports frames for streams never opened, and acks of more than was sent', async () => {
    const { invalid, streams } = setup();
    streams.receive({ type: 'egress_ack', stream: 7, bytes: EGRESS_WINDOW_BYTES });
    streams.receive({ type: 'egress_data', stream: 8, data: 'aGk=' });
    streams.receive({ type: 'egress_end', stream: 9 });
    streams.receive({ type: 'egress_close', stream: 9 });
    const source = new PassThrough();
    streams.add(1, source);
    source.write(Buffer.alloc(EGRESS_CHUNK_BYTES));
    await tick();
    streams.receive({ type: 'egress_ack', stream: 1, bytes: EGRESS_CHUNK_BYTES });
    expect(invalid).toHaveLength(4);
    streams.receive({ type: 'egress_ack', stream: 1, bytes: 1 });
    expect(invalid[4]).toBe('egress_ack for stream 1 acknowledges more than was sent');
  });

  it('counts nothing of an honest exchange, nor the late frames of a stream this side closed', async () => {
    const { invalid, streams } = setup();
    const socket = new PassThrough();
    streams.add(1, socket);
    socket.write(Buffer.alloc(3 * EGRESS_CHUNK_BYTES));
    await tick();
    for (const frame of dataFrames(1, Buffer.alloc(2 * EGRESS_CHUNK_BYTES))) streams.receive(frame);
    streams.receive({ type: 'egress_ack', stream: 1, bytes: EGRESS_CHUNK_BYTES });
    // This side closes it: what the other end sent before it knew still comes, within its window.
    socket.destroy();
    await tick();
    expect(streams.has(1)).toBe(false);
    for (const frame of dataFrames(1, Buffer.alloc(EGRESS_WINDOW_BYTES))) streams.receive(frame);
    streams.receive({ type: 'egress_ack', stream: 1, bytes: 2 * EGRESS_CHUNK_BYTES });
    streams.receive({ type: 'egress_end', stream: 1 });
    streams.receive({ type: 'egress_close', stream: 1 });
    expect(invalid).toEqual([]);
    // Past that, the frames are forged.
    streams.receive({ type: 'egress_ack', stream: 1, bytes: EGRESS_WINDOW_BYTES });
    streams.receive({ type: 'egress_close', stream: 1 });
    expect(invalid).toEqual([
      'egress_ack for closed stream 1 acknowledges more than was sent',
      'egress_close for closed stream 1 ends it again',
    ]);
  });

  it('a stream the other end closed takes no more frames; a declined open takes its early ones', () => {
    const { invalid, sent, streams } = setup();
    streams.add(2, new PassThrough());
    streams.receive({ type: 'egress_close', stream: 2 });
    streams.receive({ type: 'egress_data', stream: 2, data: 'aGk=' });
    expect(invalid).toEqual(['egress_data for stream 2, which is not open']);
    streams.decline(3, 'too many');
    expect(sent).toContainEqual({ type: 'egress_close', stream: 3, reason: 'too many' });
    streams.receive({ type: 'egress_data', stream: 3, data: 'aGk=' });
    streams.receive({ type: 'egress_close', stream: 3 });
    expect(invalid).toHaveLength(1);
    streams.receive({ type: 'egress_ack', stream: 3, bytes: 1 });
    expect(invalid).toHaveLength(2);
  });

  it('forgets all but the most recent closed streams, bounded', () => {
    const late = new LateFrames();
    for (let id = 1; id <= 1000; id++) late.closedHere(id, 0, 0);
    expect(late.judge({ type: 'egress_close', stream: 1 })).toMatch(/not open/);
    expect(late.judge({ type: 'egress_close', stream: 1000 })).toBeUndefined();
  });
});
