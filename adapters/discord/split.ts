/** Discord's limit for a message's content. */
export const DISCORD_MAX_CHARS = 2000;

/**
 * Splits text into messages of at most `max` characters, cutting at a paragraph, else a line, else a
 * space, else anywhere (never inside a surrogate pair). A code block cut in two is closed at the end of
 * one message and reopened (with its language) at the start of the next, so both render as code.
 */
export function splitMessage(text: string, max = DISCORD_MAX_CHARS): string[] {
  if (max < 40) throw new Error('splitMessage: max must be at least 40 characters');
  const closing = '\n```';
  const chunks: string[] = [];
  let rest = text;
  while (rest.length > max) {
    const limit = max - closing.length;
    const { cut, skip } = cutPoint(rest, limit);
    let piece = rest.slice(0, cut);
    let next = rest.slice(cut + skip);
    const fence = openFence(piece);
    if (fence !== null) {
      // A short reopening keeps each round consuming text (a long "fence" line would loop forever).
      const reopen = fence.length <= Math.min(20, limit / 4) ? fence : '```';
      piece = `${piece}${closing}`;
      next = `${reopen}\n${next}`;
    }
    if (piece.trim() !== '') chunks.push(piece);
    rest = next;
  }
  if (rest.trim() !== '') chunks.push(rest);
  return chunks;
}

function cutPoint(text: string, limit: number): { cut: number; skip: number } {
  // A separator right after the limit still ends a full piece.
  const window = text.slice(0, limit + 1);
  for (const [separator, minShare] of [
    ['\n\n', 0.5],
    ['\n', 0.3],
    [' ', 0.3],
  ] as const) {
    const at = window.lastIndexOf(separator);
    if (at > 0 && at >= limit * minShare && at <= limit) return { cut: at, skip: separator.length };
  }
  // No good separator: cut at the limit, but not between the halves of a surrogate pair.
  const code = text.charCodeAt(limit - 1);
  return { cut: code >= 0xd800 && code <= 0xdbff ? limit - 1 : limit, skip: 0 };
}

/** The opening fence line (e.g. "```ts") when the text ends inside a code block, else null. */
export function openFence(text: string): string | null {
  let open: string | null = null;
  for (const line of text.split('\n')) {
    const match = /^\s*(```+)(\S*)/.exec(line);
    if (!match) continue;
    open = open === null ? `\`\`\`${match[2] ?? ''}` : null;
  }
  return open;
}

/** How a reply is posted: as messages, or (when it would take too many) as a file with a preview. */
export type ReplyLayout =
  | { kind: 'messages'; chunks: string[] }
  | { kind: 'file'; preview: string; fileName: string; content: string };

export function layoutReply(text: string, maxMessages = 4, max = DISCORD_MAX_CHARS): ReplyLayout {
  const chunks = splitMessage(text, max);
  if (chunks.length <= maxMessages) return { kind: 'messages', chunks };
  const head = splitMessage(text, max - 200)[0] ?? '';
  const fence = openFence(head) === null ? '' : '\n```';
  return {
    kind: 'file',
    preview: `${head}${fence}\n\n… the full reply (${text.length} characters) is attached as reply.md.`,
    fileName: 'reply.md',
    content: text,
  };
}
