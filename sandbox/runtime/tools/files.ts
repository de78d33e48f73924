import {
  closeSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  readSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { capText, completeUtf8Length } from '../output-cap.js';
import { resolveInWorkspace } from '../paths.js';
import type { ToolContext, ToolResult } from './types.js';

/** edit_file reads the whole file; beyond this size the model should use bash instead. */
const MAX_EDIT_BYTES = 10 * 1024 * 1024;
const MAX_LIST_ENTRIES = 1000;

const fail = (output: string): ToolResult => ({ ok: false, output, truncated: false });

export function readFileTool(args: { path: string }, ctx: ToolContext): ToolResult {
  const target = resolveInWorkspace(ctx.workspace, args.path);
  if (!target.ok) return fail(target.error);
  const stat = statOrUndefined(target.path);
  if (!stat) return fail(`file "${args.path}" does not exist; use list_files to see what is there`);
  if (stat.isDirectory()) return fail(`"${args.path}" is a directory; use list_files to list it`);
  if (!stat.isFile()) return fail(`"${args.path}" is not a regular file`);
  const whole = stat.size <= ctx.outputBytes;
  const note = `\n[... file is ${stat.size} bytes; only the beginning is shown. Use bash (sed -n, tail) for the rest.]`;
  // Read only what can be shown, however large the file.
  const data = readHead(
    target.path,
    whole ? stat.size : Math.max(0, ctx.outputBytes - Buffer.byteLength(note)),
  );
  if (data.includes(0)) {
    return fail(
      `"${args.path}" looks binary (${stat.size} bytes); inspect it with bash, e.g. \`xxd FILE | head\``,
    );
  }
  if (whole) return { ok: true, output: data.toString('utf8'), truncated: false };
  return {
    ok: true,
    output: data.subarray(0, completeUtf8Length(data)).toString('utf8') + note,
    truncated: true,
  };
}

function readHead(file: string, bytes: number): Buffer {
  const buf = Buffer.alloc(bytes);
  const fd = openSync(file, 'r');
  let got = 0;
  try {
    while (got < bytes) {
      const n = readSync(fd, buf, got, bytes - got, got);
      if (n === 0) break;
      got += n;
    }
  } finally {
    closeSync(fd);
  }
  return buf.subarray(0, got);
}

export function writeFileTool(args: { path: string; content: string }, ctx: ToolContext): ToolResult {
  const target = resolveInWorkspace(ctx.workspace, args.path);
  if (!target.ok) return fail(target.error);
  if (statOrUndefined(target.path)?.isDirectory()) return fail(`"${args.path}" is a directory`);
  mkdirSync(path.dirname(target.path), { recursive: true });
  writeFileSync(target.path, args.content);
  return {
    ok: true,
    output: `wrote ${Buffer.byteLength(args.content)} bytes to ${args.path}`,
    truncated: false,
  };
}

export function editFileTool(
  args: { path: string; old_text: string; new_text: string },
  ctx: ToolContext,
): ToolResult {
  const target = resolveInWorkspace(ctx.workspace, args.path);
  if (!target.ok) return fail(target.error);
  const stat = statOrUndefined(target.path);
  if (!stat?.isFile()) return fail(`file "${args.path}" does not exist or is not a regular file`);
  if (stat.size > MAX_EDIT_BYTES)
    return fail(`"${args.path}" is ${stat.size} bytes, too large to edit; use bash`);
  const text = readFileSync(target.path, 'utf8');
  const count = countOccurrences(text, args.old_text);
  if (count === 0) {
    return fail(`old_text does not occur in ${args.path}; read the file and copy the exact text to replace`);
  }
  if (count > 1) {
    return fail(
      `old_text occurs ${count} times in ${args.path}; include more surrounding text so it occurs exactly once`,
    );
  }
  const at = text.indexOf(args.old_text);
  // Slicing, not String.replace: "$&" and friends in new_text must stay literal.
  writeFileSync(target.path, text.slice(0, at) + args.new_text + text.slice(at + args.old_text.length));
  return { ok: true, output: `replaced 1 occurrence in ${args.path}`, truncated: false };
}

export function listFilesTool(args: { path: string }, ctx: ToolContext): ToolResult {
  const target = resolveInWorkspace(ctx.workspace, args.path);
  if (!target.ok) return fail(target.error);
  const stat = statOrUndefined(target.path);
  if (!stat) return fail(`directory "${args.path}" does not exist`);
  if (!stat.isDirectory()) return fail(`"${args.path}" is a file, not a directory; use read_file to read it`);
  const names = readdirSync(target.path).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  if (names.length === 0) return { ok: true, output: '(empty directory)', truncated: false };
  const lines = names.slice(0, MAX_LIST_ENTRIES).map((name) => describeEntry(target.path, name));
  if (names.length > MAX_LIST_ENTRIES) lines.push(`[... ${names.length - MAX_LIST_ENTRIES} more entries]`);
  const capped = capText(lines.join('\n'), ctx.outputBytes);
  return { ok: true, output: capped.text, truncated: capped.truncated || names.length > MAX_LIST_ENTRIES };
}

function describeEntry(dir: string, name: string): string {
  const full = path.join(dir, name);
  try {
    const stat = lstatSync(full);
    if (stat.isDirectory()) return `${name}/`;
    if (stat.isSymbolicLink()) return `${name} -> ${readlinkSync(full)}`;
    return `${name}  ${stat.size} bytes`;
  } catch {
    return `${name}  (vanished)`;
  }
}

/** Non-overlapping occurrences of `needle` in `text`. */
export function countOccurrences(text: string, needle: string): number {
  let count = 0;
  for (let at = text.indexOf(needle); at !== -1; at = text.indexOf(needle, at + needle.length)) count++;
  return count;
}

function statOrUndefined(p: string) {
  try {
    return statSync(p);
  } catch {
    return undefined;
  }
}
