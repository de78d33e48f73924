/**
 * Reads strace's text (`-f -x`, the syscalls of scripts.ts) into events: processes started, sockets
 * connected, files opened or changed, bytes sent. Pure; a line it cannot read is skipped.
 */

export type TraceEvent =
  | { kind: 'exec'; pid: number; path: string; argv: string[] }
  | {
      kind: 'connect';
      pid: number;
      family: 'unix' | 'inet' | 'inet6' | 'other';
      address: string;
      port?: number;
      ok: boolean;
    }
  | { kind: 'open'; pid: number; path: string; write: boolean; ok: boolean; error?: string }
  | { kind: 'change'; pid: number; op: string; path: string; ok: boolean; error?: string }
  | { kind: 'send'; pid: number; data: Buffer[] };

const CALL = /^(?:\[pid\s+(\d+)\]\s+)?(\w+)\((.*)\)\s+=\s+(-?\d+|\?)(?:\s+(\w+))?/s;
const STRING = /"((?:[^"\\]|\\.)*)"/g;
const CHANGES = new Set(['rename', 'renameat', 'renameat2', 'link', 'linkat', 'symlink', 'symlinkat']);
const REMOVES = new Set(['unlink', 'unlinkat', 'mkdir', 'mkdirat', 'truncate']);
const SENDS = new Set(['sendto', 'sendmsg', 'sendmmsg', 'write']);
const WRITE_FLAGS = /O_WRONLY|O_RDWR|O_CREAT|O_TRUNC|O_APPEND/;

/** strace's escapes (-x: \xHH; also \n \t \" \\ and octal) back to bytes. */
export function straceBytes(text: string): Buffer {
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text[i] ?? '';
    if (c !== '\\') {
      bytes.push(...Buffer.from(c, 'utf8'));
      continue;
    }
    const next = text[i + 1] ?? '';
    if (next === 'x') {
      bytes.push(Number.parseInt(text.slice(i + 2, i + 4), 16));
      i += 3;
    } else if (/[0-7]/.test(next)) {
      const octal = /^[0-7]{1,3}/.exec(text.slice(i + 1))?.[0] ?? '0';
      bytes.push(Number.parseInt(octal, 8) & 255);
      i += octal.length;
    } else {
      const named: Record<string, number> = { n: 10, t: 9, r: 13, v: 11, f: 12, a: 7, b: 8 };
      bytes.push(named[next] ?? next.charCodeAt(0));
      i += 1;
    }
  }
  return Buffer.from(bytes);
}

const strings = (args: string): string[] =>
  [...args.matchAll(STRING)].map((m) => straceBytes(m[1] ?? '').toString('utf8'));

/** Joins `<unfinished ...>` halves with their `<... resumed>` ends, per process. */
export function joinLines(text: string): string[] {
  const pending = new Map<string, string>();
  const lines: string[] = [];
  for (const raw of text.split('\n')) {
    const pid = /^\[pid\s+(\d+)\]/.exec(raw)?.[1] ?? '';
    if (raw.endsWith(' <unfinished ...>')) {
      pending.set(pid, raw.slice(0, -' <unfinished ...>'.length));
      continue;
    }
    const resumed = /<\.\.\. \w+ resumed>(.*)$/s.exec(raw);
    if (resumed) {
      const start = pending.get(pid);
      pending.delete(pid);
      if (start !== undefined) lines.push(start + (resumed[1] ?? ''));
      continue;
    }
    if (raw.trim()) lines.push(raw);
  }
  return lines;
}

export function parseTrace(text: string): TraceEvent[] {
  const events: TraceEvent[] = [];
  for (const line of joinLines(text)) {
    const m = CALL.exec(line);
    if (!m) continue;
    const event = toEvent(Number(m[1] ?? 0), m[2] ?? '', m[3] ?? '', m[4] !== '-1' && m[4] !== '?', m[5]);
    if (event) events.push(event);
  }
  return events;
}

function toEvent(
  pid: number,
  name: string,
  args: string,
  ok: boolean,
  error?: string,
): TraceEvent | undefined {
  const err = error ? { error } : {};
  if (name === 'execve' || name === 'execveat') {
    if (!ok) return undefined;
    const [path = '', ...argv] = strings(args.split('], ')[0] ?? args);
    return { kind: 'exec', pid, path, argv };
  }
  if (name === 'connect') return connectEvent(pid, args, ok);
  if (name === 'open' || name === 'openat' || name === 'creat') {
    const path = pathArg(args, name === 'openat');
    const write = name === 'creat' || WRITE_FLAGS.test(args);
    return path === undefined ? undefined : { kind: 'open', pid, path, write, ok, ...err };
  }
  if (CHANGES.has(name) || REMOVES.has(name)) {
    const all = strings(args);
    const path = CHANGES.has(name) ? all.at(-1) : all[0];
    return path === undefined ? undefined : { kind: 'change', pid, op: name, path, ok, ...err };
  }
  if (SENDS.has(name)) {
    const data = [...args.matchAll(STRING)].map((s) => straceBytes(s[1] ?? ''));
    return data.length ? { kind: 'send', pid, data } : undefined;
  }
  return undefined;
}

/** The path of an open: relative to a directory descriptor other than the cwd, it is marked so. */
function pathArg(args: string, at: boolean): string | undefined {
  const path = strings(args)[0];
  if (path === undefined) return undefined;
  if (!at || path.startsWith('/') || args.startsWith('AT_FDCWD')) return path;
  return `(dir fd ${args.split(',')[0]})/${path}`;
}

function connectEvent(pid: number, args: string, ok: boolean): TraceEvent {
  const unix = /sa_family=AF_UNIX, sun_path=(@?)"((?:[^"\\]|\\.)*)"/.exec(args);
  if (unix)
    return { kind: 'connect', pid, family: 'unix', address: `${unix[1]}${straceBytes(unix[2] ?? '')}`, ok };
  const inet = /sa_family=AF_INET, sin_port=htons\((\d+)\), sin_addr=inet_addr\("([^"]+)"\)/.exec(args);
  if (inet)
    return { kind: 'connect', pid, family: 'inet', address: inet[2] ?? '', port: Number(inet[1]), ok };
  const inet6 = /sa_family=AF_INET6, sin6_port=htons\((\d+)\).*inet_pton\(AF_INET6, "([^"]+)"/.exec(args);
  if (inet6)
    return { kind: 'connect', pid, family: 'inet6', address: inet6[2] ?? '', port: Number(inet6[1]), ok };
  const family = /sa_family=(\w+)/.exec(args)?.[1] ?? 'unknown';
  return { kind: 'connect', pid, family: 'other', address: family, ok };
}

/**
 * The name a DNS query asks for, when `bytes` is one (a 12-byte header with one question and no
 * answer, then the name's labels and the question's type and class); undefined otherwise.
 */
export function dnsQueryName(bytes: Buffer): string | undefined {
  if (bytes.length < 17 || (bytes[2] ?? 0) & 0x80 || bytes.readUInt16BE(4) !== 1) return undefined;
  if (bytes.readUInt16BE(6) !== 0) return undefined;
  const labels: string[] = [];
  let at = 12;
  while (at < bytes.length) {
    const size = bytes[at] ?? 0;
    if (size === 0) break;
    if (size > 63 || at + 1 + size > bytes.length) return undefined;
    const label = bytes.subarray(at + 1, at + 1 + size).toString('latin1');
    if (!/^[\x21-\x7e]+$/.test(label)) return undefined;
    labels.push(label);
    at += 1 + size;
  }
  if (labels.length === 0 || at + 5 > bytes.length) return undefined;
  return labels.join('.').toLowerCase();
}
