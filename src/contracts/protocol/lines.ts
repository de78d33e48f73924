import type { z } from 'zod';

/** Begins a part of a long framed line (protocol/frames.ts). */
export const PART_MARK = '\x1e';

/** `bytes`: the line's size as read (decoders set it; a line over the cap counts as the cap plus one). */
export type LineResult<T> =
  | { ok: true; value: T; bytes?: number }
  | { ok: false; error: string; line?: string; bytes?: number };

/** Takes a line that begins with PART_MARK (protocol/frames.ts): the whole line, an error, or undefined. */
export type PartJoiner = (line: string) => string | { ok: false; error: string } | undefined;

/**
 * Splits a byte stream into lines and parses each with a zod schema. A line longer than `maxLineBytes`
 * is refused (and skipped up to its end) without ever being buffered whole, so a flood cannot exhaust
 * the reader's memory.
 */
export class LineDecoder<S extends z.ZodType> {
  private buffer = '';
  private discarding = false;

  constructor(
    private readonly schema: S,
    private readonly maxLineBytes: number,
    /** Joins the runtime's framed long lines (the worker's side); without it, parts are bad lines. */
    private readonly join?: PartJoiner,
  ) {}

  push(chunk: string): LineResult<z.infer<S>>[] {
    const results: LineResult<z.infer<S>>[] = [];
    let rest = chunk;
    for (;;) {
      const nl = rest.indexOf('\n');
      if (nl === -1) {
        if (!this.discarding) {
          this.buffer += rest;
          if (Buffer.byteLength(this.buffer) > this.maxLineBytes) {
            results.push(this.refusal());
            this.buffer = '';
            this.discarding = true;
          }
        }
        return results;
      }
      const piece = rest.slice(0, nl);
      rest = rest.slice(nl + 1);
      if (this.discarding) {
        this.discarding = false;
        continue;
      }
      const line = this.buffer + piece;
      this.buffer = '';
      const bytes = Buffer.byteLength(line);
      if (bytes > this.maxLineBytes) {
        results.push(this.refusal());
        continue;
      }
      if (line.trim() === '') continue;
      const joined = this.join && line.startsWith(PART_MARK) ? this.join(line) : line;
      if (joined === undefined) continue;
      if (typeof joined !== 'string') results.push({ ...joined, bytes });
      else results.push({ ...parseLine(this.schema, joined), bytes });
    }
  }

  private refusal(): LineResult<never> {
    return {
      ok: false,
      error: `protocol line over ${this.maxLineBytes} bytes refused`,
      bytes: this.maxLineBytes + 1,
    };
  }
}

export function parseLine<S extends z.ZodType>(schema: S, line: string): LineResult<z.infer<S>> {
  let json: unknown;
  try {
    json = JSON.parse(line);
  } catch {
    return { ok: false, error: 'protocol line is not JSON', line: line.slice(0, 200) };
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return {
      ok: false,
      error: `protocol line does not match: ${issue ? `${issue.path.join('.') || '(root)'}: ${issue.message}` : 'invalid'}`,
      line: line.slice(0, 200),
    };
  }
  return { ok: true, value: parsed.data };
}

export function encodeLine(message: unknown): string {
  return `${JSON.stringify(message)}\n`;
}
