import type { z } from 'zod';

export type LineResult<T> = { ok: true; value: T } | { ok: false; error: string; line?: string };

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
            results.push({ ok: false, error: `protocol line over ${this.maxLineBytes} bytes refused` });
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
      if (Buffer.byteLength(line) > this.maxLineBytes) {
        results.push({ ok: false, error: `protocol line over ${this.maxLineBytes} bytes refused` });
        continue;
      }
      if (line.trim() === '') continue;
      results.push(parseLine(this.schema, line));
    }
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
