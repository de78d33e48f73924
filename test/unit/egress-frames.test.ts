import { describe, expect, it } from 'vitest';
import { RuntimeToWorker, WorkerToRuntime } from '../../src/contracts/protocol/agent.js';
import { dataFrames, EGRESS_CHUNK_BYTES } from '../../src/contracts/protocol/egress.js';

describe('egress tunnel frames', () => {
  it('splits bytes into data frames each side accepts, and that join back whole', () => {
    const bytes = Buffer.from(Array.from({ length: 2 * EGRESS_CHUNK_BYTES + 5 }, (_, i) => i % 251));
    const frames = dataFrames(7, bytes);
    expect(frames.map((f) => Buffer.from(f.data, 'base64').length)).toEqual([
      EGRESS_CHUNK_BYTES,
      EGRESS_CHUNK_BYTES,
      5,
    ]);
    for (const frame of frames) {
      expect(RuntimeToWorker.safeParse(frame).success).toBe(true);
      expect(WorkerToRuntime.safeParse(frame).success).toBe(true);
    }
    expect(Buffer.concat(frames.map((f) => Buffer.from(f.data, 'base64')))).toEqual(bytes);
  });

  it('refuses oversized or non-base64 data, and an open only the sandbox may send', () => {
    const big = Buffer.alloc(EGRESS_CHUNK_BYTES + 3).toString('base64');
    expect(RuntimeToWorker.safeParse({ type: 'egress_data', stream: 1, data: big }).success).toBe(false);
    expect(RuntimeToWorker.safeParse({ type: 'egress_data', stream: 1, data: 'not base64!' }).success).toBe(
      false,
    );
    expect(RuntimeToWorker.safeParse({ type: 'egress_data', stream: 0, data: '' }).success).toBe(false);
    expect(RuntimeToWorker.safeParse({ type: 'egress_open', stream: 3 }).success).toBe(true);
    expect(WorkerToRuntime.safeParse({ type: 'egress_open', stream: 3 }).success).toBe(false);
  });
});
