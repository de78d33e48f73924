/**
 * Keeps a bounded view of an output stream: its first and last bytes, with a marker for what was
 * dropped in between. Memory stays bounded however much a tool prints, and the end of the output
 * (where errors usually are) survives as well as its beginning.
 */
export class OutputCap {
  private readonly headLimit: number;
  private readonly tailLimit: number;
  private readonly head: Buffer[] = [];
  private headBytes = 0;
  private tail: Buffer[] = [];
  private tailBytes = 0;
  private total = 0;

  constructor(private readonly maxBytes: number) {
    this.headLimit = Math.ceil(maxBytes / 2);
    this.tailLimit = maxBytes - this.headLimit;
  }

  push(chunk: Buffer | string): void {
    let data = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    this.total += data.length;
    if (this.headBytes < this.headLimit) {
      const take = Math.min(this.headLimit - this.headBytes, data.length);
      this.head.push(data.subarray(0, take));
      this.headBytes += take;
      data = data.subarray(take);
    }
    if (data.length === 0 || this.tailLimit === 0) return;
    this.tail.push(data);
    this.tailBytes += data.length;
    // Compact only once the tail holds twice its limit, so pushing stays cheap on average.
    if (this.tailBytes > 2 * this.tailLimit) {
      const all = Buffer.concat(this.tail);
      this.tail = [all.subarray(all.length - this.tailLimit)];
      this.tailBytes = this.tailLimit;
    }
  }

  get totalBytes(): number {
    return this.total;
  }

  get truncated(): boolean {
    return this.total > this.maxBytes;
  }

  /** The kept output as text, at most `maxBytes` bytes long (marker included). */
  text(): string {
    const head = Buffer.concat(this.head);
    const tailAll = Buffer.concat(this.tail);
    if (!this.truncated) return Buffer.concat([head, tailAll]).toString('utf8');
    const headText = head.subarray(0, completeUtf8Length(head)).toString('utf8');
    const headLen = Buffer.byteLength(headText);
    let marker = '';
    let tailKeep = tailAll.length;
    // The marker's length depends on the count it reports; two rounds settle it.
    for (let round = 0; round < 3; round++) {
      marker = `\n[... ${this.total - headLen - tailKeep} bytes omitted ...]\n`;
      tailKeep = Math.min(tailAll.length, Math.max(0, this.maxBytes - headLen - Buffer.byteLength(marker)));
    }
    if (headLen + Buffer.byteLength(marker) > this.maxBytes) return headText;
    const tail = tailAll.subarray(tailAll.length - tailKeep);
    return headText + marker + tail.subarray(firstCharStart(tail)).toString('utf8');
  }
}

/** Caps a whole text at `maxBytes` bytes, keeping its beginning and end. */
export function capText(text: string, maxBytes: number): { text: string; truncated: boolean } {
  if (Buffer.byteLength(text) <= maxBytes) return { text, truncated: false };
  const cap = new OutputCap(maxBytes);
  cap.push(text);
  return { text: cap.text(), truncated: true };
}

/** Length of `buf` without a trailing, incomplete UTF-8 sequence (so decoding adds no U+FFFD). */
export function completeUtf8Length(buf: Buffer): number {
  let i = buf.length - 1;
  let continuation = 0;
  while (i >= 0 && continuation < 3 && ((buf[i] ?? 0) & 0xc0) === 0x80) {
    i--;
    continuation++;
  }
  if (i < 0) return 0;
  const lead = buf[i] ?? 0;
  const needed = lead >= 0xf0 ? 3 : lead >= 0xe0 ? 2 : lead >= 0xc0 ? 1 : 0;
  return needed > continuation ? i : buf.length;
}

/** Index of the first byte of `buf` that starts a character (skips leading continuation bytes). */
export function firstCharStart(buf: Buffer): number {
  let i = 0;
  while (i < buf.length && i < 3 && ((buf[i] ?? 0) & 0xc0) === 0x80) i++;
  return i;
}
