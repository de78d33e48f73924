import { type LineResult, PART_MARK } from './lines.js';

export { PART_MARK };

/**
 * How the runtime's lines survive other writers on its stdout. Any process in a sandbox can write to
 * the runtime's stdout (through /proc/<pid>/fd/1), and a pipe only keeps a write whole when it is at
 * most PIPE_BUF bytes (4096 on Linux and gVisor). So the runtime writes every line as frames of at most
 * that size, each in one write(2), each starting with a newline (whatever another writer left without
 * one ends there, as a line of its own) and ending with one. A line that fits is one frame as it is; a
 * longer one goes as parts, `\x1e<key><+ or .><piece>`, where the key is the one the worker gave the
 * runtime in `hello` and no agent process sees: a forged part does not carry it, so it cannot join or
 * cut a real line. Foreign bytes thus only ever make lines of their own, which the worker counts.
 */
export const ATOMIC_WRITE_BYTES = 4096;
/** Hex characters of a frame key (16 random bytes). */
export const FRAME_KEY_CHARS = 32;

const NL = Buffer.from('\n');

/**
 * The frames (each ≤ ATOMIC_WRITE_BYTES, each for one write) that carry `message` as one line. Without
 * a key (no worker said hello yet: a runtime run by hand or in a test) a long line goes whole.
 */
export function encodeFrames(message: unknown, key: string): Buffer[] {
  const json = Buffer.from(JSON.stringify(message));
  if (json.length + 2 <= ATOMIC_WRITE_BYTES || key === '') return [Buffer.concat([NL, json, NL])];
  const room = ATOMIC_WRITE_BYTES - key.length - 4;
  const frames: Buffer[] = [];
  for (let start = 0; start < json.length; ) {
    let end = Math.min(json.length, start + room);
    // Cut between characters: each piece stays valid UTF-8 when another writer's bytes come between.
    while (end < json.length && ((json[end] ?? 0) & 0xc0) === 0x80) end -= 1;
    const last = end === json.length;
    frames.push(
      Buffer.concat([Buffer.from(`\n${PART_MARK}${key}${last ? '.' : '+'}`), json.subarray(start, end), NL]),
    );
    start = end;
  }
  return frames;
}

/**
 * Joins the parts of long lines (the reading side of encodeFrames). `accept` takes a line that begins
 * with PART_MARK and returns the whole line once its last part is in, undefined while parts are still
 * to come, or an error for a part without the key (forged) or a line over the cap (whose remaining
 * parts are then dropped). At most one line is ever being joined: only the runtime holds the key, and
 * it writes one line at a time.
 */
export class FrameJoiner {
  private parts: string[] = [];
  private bytes = 0;
  private refused = false;

  constructor(
    private readonly key: string,
    private readonly maxLineBytes: number,
  ) {}

  accept(line: string): string | Extract<LineResult<never>, { ok: false }> | undefined {
    if (line.slice(1, 1 + FRAME_KEY_CHARS) !== this.key || this.key.length !== FRAME_KEY_CHARS) {
      return { ok: false, error: 'a line part without this session’s key (not from the runtime)' };
    }
    const flag = line[1 + FRAME_KEY_CHARS];
    if (flag !== '+' && flag !== '.') return { ok: false, error: 'a line part without its flag' };
    const piece = line.slice(2 + FRAME_KEY_CHARS);
    // The over-cap error is reported once, at the part that went over; the rest of the line is dropped.
    let overflowed = false;
    if (!this.refused) {
      this.parts.push(piece);
      this.bytes += Buffer.byteLength(piece);
      if (this.bytes > this.maxLineBytes) {
        this.parts = [];
        this.refused = overflowed = true;
      }
    }
    const refusal = { ok: false as const, error: `protocol line over ${this.maxLineBytes} bytes refused` };
    if (flag === '+') return overflowed ? refusal : undefined;
    const whole = this.refused ? undefined : this.parts.join('');
    this.parts = [];
    this.bytes = 0;
    this.refused = false;
    return whole ?? (overflowed ? refusal : undefined);
  }
}
