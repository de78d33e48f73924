import type { ToolCall } from '../../contracts/protocol/agent.js';

/**
 * Tool calls as small models really write them. Besides proper `tool_calls`, a model may write a call
 * in its text: `<tool_call>{"name": …, "arguments": {…}}</tool_call>` (Qwen/Hermes), or a bare JSON
 * object `{"name": …, "arguments"|"parameters": {…}}` that is the whole text (Llama 3.x), several of
 * them, or `arguments` as a JSON string. Reasoning models add their thinking (`<think>…</think>`).
 * Pure: the broker folds the stream, then this turns the answer into clean content and calls.
 */

export interface RawAnswer {
  content: string;
  /** Ollama's separate `thinking` field. */
  thinking?: string;
  /** The native `tool_calls`, unvalidated. */
  toolCalls: readonly unknown[];
}

export interface ShapedAnswer {
  /** The text with thinking and written calls taken out. */
  content: string;
  toolCalls: ToolCall[];
  /** Why each call that looks like one could not be read (answered with `formatError`). */
  unreadable: string[];
  /** All the thinking, from the field and from `<think>` blocks (never shown, only counted). */
  thinking: string;
}

const TOOL_CALL_TAG = /<tool_call>([\s\S]*?)(?:<\/tool_call>|$)/g;

export function shapeAnswer(raw: RawAnswer, offered: readonly string[]): ShapedAnswer {
  const names = new Set(offered);
  const stripped = stripThinking(raw.content);
  const thinking = [raw.thinking ?? '', stripped.thinking].filter((t) => t !== '').join('\n');
  const toolCalls: ToolCall[] = [];
  const unreadable: string[] = [];
  for (const call of raw.toolCalls) {
    const read = readNativeCall(call);
    if ('call' in read) toolCalls.push(read.call);
    else unreadable.push(read.problem);
  }
  let content = stripped.content;
  if (content.includes('<tool_call>')) {
    content = content.replace(TOOL_CALL_TAG, (_whole, inner: string) => {
      const read = readWrittenCall(inner, names);
      if ('call' in read) toolCalls.push(read.call);
      else unreadable.push(read.problem);
      return '';
    });
    content = content.trim();
  } else {
    const bare = readBareCalls(content, names);
    if (bare) {
      toolCalls.push(...bare.calls);
      unreadable.push(...bare.unreadable);
      content = '';
    }
  }
  if (stripped.thinking !== '') content = content.trim();
  return { content, toolCalls, unreadable, thinking };
}

/** What the model is told when a call could not be read: the exact format to use. */
export function formatError(problems: readonly string[], offered: readonly string[]): string {
  const example = offered.includes('bash') ? 'bash' : (offered[0] ?? 'tool_name');
  const args = example === 'bash' ? '{"command": "ls -la"}' : '{"argument": "value"}';
  return [
    `Error: your tool call could not be read (${problems.join('; ')}). Nothing was run.`,
    'Call a tool through the tool-calling interface, or write each call exactly like this:',
    `<tool_call>{"name": "${example}", "arguments": ${args}}</tool_call>`,
    `"name" must be one of: ${offered.join(', ') || 'none'}; "arguments" must be a JSON object.`,
  ].join('\n');
}

/** Takes out `<think>…</think>` blocks, an unclosed `<think>` to the end, and a leading `…</think>`. */
export function stripThinking(text: string): { content: string; thinking: string } {
  const thoughts: string[] = [];
  let content = text.replace(/<think>([\s\S]*?)(?:<\/think>|$)/g, (_whole, inner: string) => {
    thoughts.push(inner);
    return '';
  });
  // A close without an open: the template opened the block in the prompt, the answer starts inside it.
  const close = content.lastIndexOf('</think>');
  if (close >= 0) {
    thoughts.unshift(content.slice(0, close).replaceAll('</think>', ''));
    content = content.slice(close + '</think>'.length);
  }
  return {
    content,
    thinking: thoughts
      .map((t) => t.trim())
      .filter((t) => t !== '')
      .join('\n'),
  };
}

type Read = { call: ToolCall } | { problem: string };

/** A native call: passed on whatever its name (the runtime answers unknown tools); arguments parsed. */
function readNativeCall(raw: unknown): Read {
  const fn = isRecord(raw) && isRecord(raw.function) ? raw.function : undefined;
  if (!fn || typeof fn.name !== 'string' || fn.name === '' || fn.name.length > 128) {
    return { problem: 'a tool call without a tool name' };
  }
  const args = readArguments(fn.arguments);
  if (!args) return { problem: `the arguments of ${fn.name} are not a JSON object` };
  return { call: { function: { name: fn.name, arguments: args } } };
}

/** The inside of a `<tool_call>` tag: a clear intent to call, so anything wrong is reported. */
function readWrittenCall(inner: string, names: ReadonlySet<string>): Read {
  const value = parseJson(stripFence(inner.trim()));
  if (value === undefined) return { problem: 'the text inside <tool_call> is not valid JSON' };
  const read = readCallObject(value, names);
  return read ?? { problem: 'the JSON inside <tool_call> has no "name" and "arguments"' };
}

/**
 * The whole text as one or more JSON call objects. Undefined when it is not that (ordinary text or
 * data, or a name the turn did not offer); unreadable when it clearly starts a call to an offered tool.
 */
function readBareCalls(
  content: string,
  names: ReadonlySet<string>,
): { calls: ToolCall[]; unreadable: string[] } | undefined {
  const text = stripFence(content.trim());
  if (!text.startsWith('{') && !text.startsWith('[')) return undefined;
  const values = parseJsonSequence(text);
  if (!values) {
    const named = /^\[?\s*\{\s*"(?:name|function)"\s*:\s*"([^"]{1,128})"/.exec(text)?.[1];
    if (named !== undefined && names.has(named)) {
      return { calls: [], unreadable: [`the call to ${named} is not valid JSON`] };
    }
    return undefined;
  }
  const items = values.flatMap((v) => (Array.isArray(v) ? v : [v]));
  // Ordinary data stays text: every value must be a call, with arguments, to a tool the turn offered.
  if (items.length === 0 || !items.every((item) => isBareCall(item, names))) return undefined;
  const reads = items.map((item) => readCallObject(item, names));
  const calls: ToolCall[] = [];
  const unreadable: string[] = [];
  for (const read of reads as Read[]) {
    if ('call' in read) calls.push(read.call);
    else unreadable.push(read.problem);
  }
  return { calls, unreadable };
}

function isBareCall(value: unknown, names: ReadonlySet<string>): boolean {
  if (!isRecord(value)) return false;
  const fn = isRecord(value.function) ? value.function : value;
  return typeof fn.name === 'string' && names.has(fn.name) && ('arguments' in fn || 'parameters' in fn);
}

/**
 * `{"name", "arguments"|"parameters"}`, also wrapped as `{"function": {…}}` or with `"type": "function"`.
 * Undefined when it is not a call to an offered tool.
 */
function readCallObject(value: unknown, names: ReadonlySet<string>): Read | undefined {
  if (!isRecord(value)) return undefined;
  const fn = isRecord(value.function) ? value.function : value;
  const name = typeof fn.name === 'string' ? fn.name : '';
  if (!names.has(name)) {
    return name === '' ? undefined : { problem: `"${name.slice(0, 128)}" is not one of the tools offered` };
  }
  const given = 'arguments' in fn ? fn.arguments : 'parameters' in fn ? fn.parameters : {};
  const args = readArguments(given);
  if (!args) return { problem: `the arguments of ${name} are not a JSON object` };
  return { call: { function: { name, arguments: args } } };
}

/** An object, or a JSON string holding one ("" and null mean no arguments). */
export function readArguments(value: unknown): Record<string, unknown> | undefined {
  if (value === undefined || value === null) return {};
  if (typeof value === 'string') {
    if (value.trim() === '') return {};
    const parsed = parseJson(value);
    return isRecord(parsed) ? parsed : undefined;
  }
  return isRecord(value) ? value : undefined;
}

/** A ```json fence around the whole text, as models like to add. */
function stripFence(text: string): string {
  const fenced = /^```[a-zA-Z]*\s*\n?([\s\S]*?)\n?```$/.exec(text);
  return fenced ? (fenced[1] ?? '').trim() : text;
}

/** JSON values one after another, separated by whitespace, `;` or `,`; undefined if anything else. */
export function parseJsonSequence(text: string): unknown[] | undefined {
  const values: unknown[] = [];
  let rest = text.trim();
  while (rest !== '') {
    const end = matchingEnd(rest);
    if (end < 0) return undefined;
    const value = parseJson(rest.slice(0, end + 1));
    if (value === undefined) return undefined;
    values.push(value);
    rest = rest
      .slice(end + 1)
      .replace(/^[\s;,]+/, '')
      .trimStart();
  }
  return values;
}

/** Index of the bracket closing the one `text` starts with (strings respected); -1 if none. */
function matchingEnd(text: string): number {
  const first = text[0];
  if (first !== '{' && first !== '[') return -1;
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') {
      depth--;
      if (depth === 0) return i;
    }
  }
  return -1;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
