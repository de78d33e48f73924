/**
 * SKILL.md front matter: the YAML block between `---` lines at the top. No YAML library is installed,
 * so this reads the subset manifests need: nested maps and lists by indentation, plain, quoted and
 * block (`|`, `>`) scalars, numbers, booleans, null, and JSON-style flow values (`[…]`, `{…}`).
 * Anything else is an error that names the line, never a silent guess.
 */

export type FrontMatter = { data: Record<string, unknown>; body: string } | { error: string };

export function splitFrontMatter(text: string): FrontMatter | undefined {
  const normalized = text.replace(/^\uFEFF/, '').replace(/\r\n/g, '\n');
  if (!normalized.startsWith('---\n')) return undefined;
  const lines = normalized.split('\n');
  const end = lines.findIndex((line, i) => i > 0 && /^(---|\.\.\.)\s*$/.test(line));
  if (end === -1) return { error: 'SKILL.md: the front matter has no closing "---" line' };
  try {
    const value = parseYamlSubset(lines.slice(1, end));
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      return { error: 'SKILL.md: the front matter must be a mapping of keys (name: …, version: …)' };
    }
    return {
      data: value as Record<string, unknown>,
      body: lines
        .slice(end + 1)
        .join('\n')
        .trim(),
    };
  } catch (error) {
    return { error: `SKILL.md front matter: ${(error as Error).message}` };
  }
}

interface Line {
  no: number;
  indent: number;
  text: string;
}

export function parseYamlSubset(raw: readonly string[]): unknown {
  const lines: Line[] = [];
  raw.forEach((text, i) => {
    if (/^\s*(#.*)?$/.test(text)) return;
    if (/^\s*\t/.test(text)) throw new Error(`line ${i + 2}: indent with spaces, not tabs`);
    lines.push({ no: i + 2, indent: text.length - text.trimStart().length, text: text.trim() });
  });
  const cursor = { at: 0, lines, raw };
  if (lines.length === 0) return {};
  const value = parseBlock(cursor, lines[0]?.indent ?? 0);
  const left = lines[cursor.at];
  if (left) throw new Error(`line ${left.no}: unexpected indentation`);
  return value;
}

type Cursor = { at: number; lines: Line[]; raw: readonly string[] };

function parseBlock(c: Cursor, indent: number): unknown {
  const first = c.lines[c.at];
  if (!first) return null;
  return first.text.startsWith('- ') || first.text === '-' ? parseList(c, indent) : parseMap(c, indent);
}

function parseList(c: Cursor, indent: number): unknown[] {
  const items: unknown[] = [];
  for (let line = c.lines[c.at]; line && line.indent === indent; line = c.lines[c.at]) {
    // A key at the list's indentation ends a list that sits under its key ("key:\n- a\nnext: b").
    if (!(line.text.startsWith('- ') || line.text === '-')) break;
    const rest = line.text.slice(1).trimStart();
    if (rest === '') {
      c.at += 1;
      items.push(nested(c, indent));
    } else if (keyOf(rest)) {
      // "- key: value" starts a map whose other keys line up with "key".
      const inner = indent + (line.text.length - rest.length);
      c.lines[c.at] = { no: line.no, indent: inner, text: rest };
      items.push(parseMap(c, inner));
    } else {
      c.at += 1;
      items.push(scalar(rest, line.no));
    }
  }
  return items;
}

function parseMap(c: Cursor, indent: number): Record<string, unknown> {
  const map: Record<string, unknown> = {};
  for (let line = c.lines[c.at]; line && line.indent === indent; line = c.lines[c.at]) {
    const key = keyOf(line.text);
    if (!key) throw new Error(`line ${line.no}: expected "key: value"`);
    if (key.name in map) throw new Error(`line ${line.no}: "${key.name}" appears twice`);
    c.at += 1;
    if (key.rest === '') map[key.name] = nested(c, indent);
    else if (/^[|>][-+]?$/.test(key.rest)) map[key.name] = blockScalar(c, indent, key.rest, line.no);
    else map[key.name] = scalar(key.rest, line.no);
  }
  const next = c.lines[c.at];
  if (next && next.indent > indent) throw new Error(`line ${next.no}: unexpected indentation`);
  return map;
}

/** The value under a key or dash with nothing after it: a deeper block, or null. */
function nested(c: Cursor, indent: number): unknown {
  const next = c.lines[c.at];
  if (!next || next.indent <= indent) {
    // A list may sit at the same indentation as its key ("key:\n- a").
    if (next && next.indent === indent && next.text.startsWith('- ')) return parseList(c, indent);
    return null;
  }
  return parseBlock(c, next.indent);
}

function blockScalar(c: Cursor, indent: number, style: string, no: number): string {
  const start = c.lines[c.at];
  if (!start || start.indent <= indent) return '';
  // Take the raw lines (blank ones included) while they are blank or indented deeper than the key.
  const parts: string[] = [];
  let rawIndex = start.no - 2;
  for (; rawIndex < c.raw.length; rawIndex++) {
    const text = c.raw[rawIndex] ?? '';
    const blank = text.trim() === '';
    if (!blank && text.length - text.trimStart().length < start.indent) break;
    parts.push(blank ? '' : text.slice(start.indent));
  }
  while (c.lines[c.at] && (c.lines[c.at]?.no ?? 0) - 2 < rawIndex) c.at += 1;
  while (parts.at(-1) === '') parts.pop();
  if (parts.length === 0) throw new Error(`line ${no}: empty block scalar`);
  const text = style.startsWith('>')
    ? parts.join('\n').replace(/([^\n])\n(?=[^\n])/g, '$1 ')
    : parts.join('\n');
  return style.endsWith('-') ? text : `${text}\n`;
}

function keyOf(text: string): { name: string; rest: string } | undefined {
  const match = /^("(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[A-Za-z0-9_$][A-Za-z0-9_$.-]*)\s*:(?:\s+(.*)|$)/.exec(
    text,
  );
  if (!match?.[1]) return undefined;
  const name = match[1].startsWith('"') || match[1].startsWith("'") ? String(scalar(match[1], 0)) : match[1];
  return { name, rest: (match[2] ?? '').trim() };
}

function scalar(text: string, no: number): unknown {
  if (text.startsWith('"')) {
    try {
      return JSON.parse(text);
    } catch {
      throw new Error(`line ${no}: a double-quoted string must end with " and use JSON escapes`);
    }
  }
  if (text.startsWith("'")) {
    if (!/^'(?:[^']|'')*'$/.test(text)) throw new Error(`line ${no}: a single-quoted string must end with '`);
    return text.slice(1, -1).replaceAll("''", "'");
  }
  if (text.startsWith('[') || text.startsWith('{')) {
    try {
      return JSON.parse(text);
    } catch {
      throw new Error(`line ${no}: write [ … ] and { … } values as JSON (quoted strings), or as a block`);
    }
  }
  const plain = text.replace(/\s+#.*$/, '');
  if (/^(true|false)$/i.test(plain)) return plain.toLowerCase() === 'true';
  if (/^(null|~)$/i.test(plain)) return null;
  if (/^-?(0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?$/.test(plain)) return Number(plain);
  if (/^[&*!%@`]/.test(plain))
    throw new Error(`line ${no}: anchors, tags and "${plain[0]}" are not supported`);
  return plain;
}
