/**
 * Keeps audit events small: one event is one line of a file and one Redis stream entry, and the writer
 * finds the chain's head by reading the file's tail, so a line may never exceed MAX_EVENT_BYTES.
 */

export const MAX_EVENT_BYTES = 64 * 1024;
const MAX_DEPTH = 8;
const MAX_ITEMS = 200;

/** The text cut to `max` characters, saying how much was left out. */
export function capText(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}… [${text.length - max} more characters]`;
}

/** A copy of a JSON-like value with long strings cut, long arrays shortened and deep nesting stopped. */
export function boundValue(value: unknown, maxString: number, depth = 0): unknown {
  if (typeof value === 'string') return capText(value, maxString);
  if (value === null || typeof value !== 'object') return value;
  if (depth >= MAX_DEPTH) return '[nested too deep]';
  if (Array.isArray(value)) {
    const items = value.slice(0, MAX_ITEMS).map((v) => boundValue(v, maxString, depth + 1));
    if (value.length > MAX_ITEMS) items.push(`[${value.length - MAX_ITEMS} more items]`);
    return items;
  }
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value as Record<string, unknown>).slice(0, MAX_ITEMS)) {
    out[capText(key, 200)] = boundValue(v, maxString, depth + 1);
  }
  return out;
}

/** `data` bounded so the whole event fits in a line: strings shortened further until it does. */
export function boundData(data: Record<string, unknown>, room = MAX_EVENT_BYTES - 2048) {
  for (const maxString of [8192, 1024, 128]) {
    const bounded = boundValue(data, maxString) as Record<string, unknown>;
    if (Buffer.byteLength(JSON.stringify(bounded)) <= room) return bounded;
  }
  return { truncated: true, bytes: Buffer.byteLength(JSON.stringify(data)) };
}
