/**
 * Text between Slack and the agent. Slack sends text with its own markup (`<@U1>`, `<url|label>`) and
 * HTML-escapes `&`, `<` and `>`; the agent should read what the person typed. Text going back is
 * escaped, so an agent cannot ping `@channel` or a person, or forge a link's label.
 */

/** Slack's message text, as the person typed it, without the bot's own mention. */
export function toPlainText(text: string, botUserId?: string): string {
  const withoutMention =
    botUserId === undefined ? text : text.replace(new RegExp(`<@${botUserId}(\\|[^>]*)?>`, 'g'), '');
  return unescapeEntities(
    withoutMention.replace(/<([^<>]*)>/g, (_all, inner: string) => {
      const [target = '', label] = splitOnce(inner, '|');
      if (target.startsWith('@')) return label ? `@${label}` : target;
      if (target.startsWith('#')) return label ? `#${label}` : target;
      if (target.startsWith('!date^')) return label ?? '';
      if (target.startsWith('!subteam^')) return label ?? '@group';
      if (target.startsWith('!')) return `@${target.slice(1)}`;
      // A link: Slack shows the label; the agent gets the address too.
      return label && label !== target && label !== target.replace(/^mailto:/, '')
        ? `${label} (${target})`
        : (label ?? target);
    }),
  ).trim();
}

function splitOnce(text: string, separator: string): [string, string | undefined] {
  const at = text.indexOf(separator);
  return at === -1 ? [text, undefined] : [text.slice(0, at), text.slice(at + 1)];
}

function unescapeEntities(text: string): string {
  return text.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
}

/** Makes text safe to post: no mentions, no `<!channel>`, no hidden links; Slack shows it as written. */
export function escapeForSlack(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Characters per message: well under Slack's 4,000-character display limit even after escaping. */
export const PART_CHARS = 3500;
/** More parts than this and the reply goes as a file instead (a wall of messages helps nobody). */
export const MAX_PARTS = 4;

/**
 * Splits a long reply into messages at paragraph, then line, then word boundaries. A code block cut
 * in two is closed at the end of one part and reopened (with its language) at the start of the next.
 */
export function splitForSlack(text: string, limit = PART_CHARS): string[] {
  const parts: string[] = [];
  let rest = text.trim();
  // Room for the fence lines a cut code block gets.
  const budget = Math.max(limit - 24, 16);
  while (rest.length > limit) {
    const cut = bestCut(rest, budget);
    let head = rest.slice(0, cut).trimEnd();
    rest = rest.slice(cut).replace(/^\s*\n/, '');
    const open = openFence(head);
    if (open !== undefined) {
      head = `${head}\n\`\`\``;
      rest = `${open}\n${rest}`;
    }
    parts.push(head);
  }
  if (rest.length > 0 || parts.length === 0) parts.push(rest);
  return parts;
}

function bestCut(text: string, budget: number): number {
  const window = text.slice(0, budget);
  const floor = Math.floor(budget / 2);
  for (const separator of ['\n\n', '\n', ' ']) {
    const at = window.lastIndexOf(separator);
    if (at >= floor) return at + separator.length;
  }
  return budget;
}

/** The opening fence line (e.g. "```ts") when the text ends inside a code block. */
function openFence(text: string): string | undefined {
  let open: string | undefined;
  for (const line of text.split('\n')) {
    const trimmed = line.trim();
    // A fence line opens or closes a block; "```code```" on one line does neither.
    if (!trimmed.startsWith('```') || (trimmed.length > 3 && trimmed.endsWith('```'))) continue;
    if (open === undefined) open = trimmed;
    else open = undefined;
  }
  return open;
}

/** A shorter text for a message that accompanies a reply sent as a file. */
export function preview(text: string, max = 1200): string {
  if (text.length <= max) return text;
  const cut = text.lastIndexOf('\n', max);
  return `${text.slice(0, cut > max / 2 ? cut : max).trimEnd()}\n…`;
}
