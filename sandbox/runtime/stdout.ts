import { writeSync } from 'node:fs';
import { encodeFrames } from '../../src/contracts/protocol/frames.js';

/**
 * Writes one protocol line to fd 1 as frames of at most PIPE_BUF bytes, each in a single write(2),
 * so another writer on the same pipe (any process in the sandbox can open /proc/<pid>/fd/1) can put
 * its bytes only between frames, never inside one (src/contracts/protocol/frames.ts). Not through
 * process.stdout: its writes may be merged or split. A full pipe blocks the runtime, as a synchronous
 * stdout did before.
 */
export function writeLine(message: unknown, frameKey: string, fd = 1): void {
  for (const frame of encodeFrames(message, frameKey)) writeWhole(fd, frame);
}

function writeWhole(fd: number, frame: Buffer): void {
  let offset = 0;
  while (offset < frame.length) {
    try {
      offset += writeSync(fd, frame, offset);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // A non-blocking pipe that is full: a write this small goes in whole or not at all.
      if (code !== 'EAGAIN') throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
    }
  }
}
