import { isIP } from 'node:net';
import { type Grant, isGranted } from '../../../contracts/policy/network-policy.js';
import { canaryNeedles } from '../../turn/canary.js';
import type { BehaviourFinding, HostTried, ToolBehaviour } from './report.js';
import { PROXY_PORT } from './scripts.js';
import { dnsQueryName, parseTrace, type TraceEvent } from './trace.js';

/**
 * What one tool did, from its trace and the recorder's lines, and what of it is a finding. Pure.
 * Critical: an undeclared host, the metadata address, a unix socket, a canary. Listed for the approver:
 * declared hosts (info), writes outside /workspace and /tmp, other local ports, a time-out (warnings).
 */

/** A planted secret: in the environment (`env`) or in a file (`path`), with its unique value. */
export interface Canary {
  name: string;
  value: string;
  env?: string;
  path?: string;
}

export interface RecorderRecord {
  kind: string;
  path?: string;
  method?: string;
  target?: string;
  data?: string;
}

export interface ToolRun {
  tool: string;
  args: string;
  exitCode: number | null;
  timedOut: boolean;
  overMemory: boolean;
  ms: number;
  maxRssKb: number;
  output: string;
  trace: string;
  records: RecorderRecord[];
}

export interface ObserveContext {
  grants: readonly Grant[];
  canaries: readonly Canary[];
}

const METADATA = new Set(['169.254.169.254', 'fd00:ec2::254', '169.254.170.2', 'metadata.google.internal']);
/** What every process does by itself: glibc asks nscd, resolves through the recorder's DNS address. */
const NOISE_UNIX = new Set(['/var/run/nscd/socket', '/run/nscd/socket']);
const OWN_AREAS = ['/workspace/', '/tmp/', '/dev/fd/', '/proc/self/fd/'];
const OWN_FILES = new Set([
  '/dev/null',
  '/dev/tty',
  '/dev/stdout',
  '/dev/stderr',
  '/dev/zero',
  '/dev/urandom',
]);

export function observeTool(
  run: ToolRun,
  ctx: ObserveContext,
): { behaviour: ToolBehaviour; findings: BehaviourFinding[] } {
  const events = parseTrace(run.trace);
  const execs = events.filter((e): e is Extract<TraceEvent, { kind: 'exec' }> => e.kind === 'exec');
  // The first exec is the launcher's own shell, which then becomes the tool.
  const processes = execs.slice(1).map((e) => e.argv.join(' ').slice(0, 300));
  const sockets = socketsOf(events, run.records);
  const hosts = hostsOf(events, run.records, ctx.grants);
  const canaries = canariesOf(events, run, ctx.canaries);
  const filesWritten = writesOf(events);
  const mask = (text: string) =>
    ctx.canaries.reduce((t, c) => t.replaceAll(c.value, `<canary ${c.name}>`), text);
  const behaviour: ToolBehaviour = {
    tool: run.tool,
    args: run.args,
    exitCode: run.exitCode,
    timedOut: run.timedOut,
    overMemory: run.overMemory,
    ms: run.ms,
    maxRssKb: run.maxRssKb,
    processes: processes.map(mask),
    filesWritten,
    sockets: sockets.map((s) => s.text),
    hosts,
    canaries,
    output: mask(run.output.slice(0, 600)),
  };
  const findings = findingsOf(behaviour, sockets, execs.length === 0);
  return { behaviour, findings };
}

interface SocketSeen {
  text: string;
  unix: boolean;
  local: boolean;
}

function socketsOf(events: readonly TraceEvent[], records: readonly RecorderRecord[]): SocketSeen[] {
  const seen = new Map<string, SocketSeen>();
  for (const e of events) {
    if (e.kind !== 'connect') continue;
    if (e.family === 'unix' && NOISE_UNIX.has(e.address)) continue;
    const loopback = /^(127\.|::1$|::ffff:127\.)/.test(e.address);
    // The recorder's own addresses: DNS (resolv.conf) and the proxy; what went there is read as hosts.
    if (loopback && (e.port === 53 || e.port === PROXY_PORT)) continue;
    const where =
      e.family === 'unix'
        ? `unix ${e.address}`
        : e.family === 'other'
          ? e.address
          : `${e.family} ${e.address}:${e.port}`;
    const text = `${where}${e.ok ? '' : ' (failed)'}`;
    seen.set(where, { text, unix: e.family === 'unix', local: loopback });
  }
  // The decoy saw it too; alone, when the trace missed it (a tool that stopped its tracer).
  for (const r of records) {
    const where = `unix ${r.path}`;
    if (r.kind === 'unix' && !seen.has(where))
      seen.set(where, { text: `${where} (seen by the decoy)`, unix: true, local: true });
  }
  return [...seen.values()];
}

function hostsOf(
  events: readonly TraceEvent[],
  records: readonly RecorderRecord[],
  grants: readonly Grant[],
): HostTried[] {
  const hosts = new Map<string, HostTried>();
  const add = (host: string, via: HostTried['via'], port?: number) => {
    const name = host.toLowerCase().replace(/\.$/, '');
    const key = `${name}:${port ?? ''}`;
    if (name === '' || name === 'localhost' || hosts.has(key)) return;
    hosts.set(key, { host: name, ...(port ? { port } : {}), via, declared: declared(grants, name, port) });
  };
  for (const e of events) {
    if (e.kind === 'send')
      for (const d of e.data) {
        const n = dnsQueryName(d);
        if (n) add(n, 'dns');
      }
    if (e.kind === 'connect' && (e.family === 'inet' || e.family === 'inet6')) {
      if (!/^(127\.|::1$|::ffff:127\.)/.test(e.address)) add(e.address, 'connect', e.port);
    }
  }
  for (const r of records) {
    if (r.kind !== 'proxy' || !r.target) continue;
    const target = proxyTarget(r.method ?? '', r.target);
    if (target) add(target.host, 'proxy', target.port);
  }
  return [...hosts.values()];
}

function proxyTarget(method: string, target: string): { host: string; port: number } | undefined {
  if (method === 'CONNECT') {
    const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(target);
    return m ? { host: m[1] ?? '', port: Number(m[2]) } : undefined;
  }
  try {
    const url = new URL(target);
    return {
      host: url.hostname.replace(/^\[|\]$/g, ''),
      port: Number(url.port || (url.protocol === 'https:' ? 443 : 80)),
    };
  } catch {
    return undefined;
  }
}

/** Declared: a manifest host covers it (a name seen in DNS alone has no port: any declared port counts). */
function declared(grants: readonly Grant[], host: string, port?: number): boolean {
  if (port !== undefined) return isGranted(grants, host, port);
  return isGranted(
    grants.map((g) => g.split(':')[0] ?? g),
    host,
    443,
  );
}

function canariesOf(events: readonly TraceEvent[], run: ToolRun, canaries: readonly Canary[]) {
  const found = new Map<string, { canary: string; how: string }>();
  const add = (canary: string, how: string) => found.set(`${canary}|${how}`, { canary, how });
  for (const e of events) {
    if (e.kind === 'open' && e.ok && /^\/proc\/(self|\d+)\/environ$/.test(e.path))
      add('environment', `read ${e.path}`);
    for (const c of canaries) {
      if (e.kind === 'open' && e.ok && c.path && e.path === c.path) add(c.name, `opened ${c.path}`);
    }
  }
  const places: [string, string][] = [
    ['a command line', events.flatMap((e) => (e.kind === 'exec' ? e.argv : [])).join('\n')],
    [
      'bytes sent or written',
      events.flatMap((e) => (e.kind === 'send' ? e.data.map((d) => d.toString('latin1')) : [])).join('\n'),
    ],
    [
      'a DNS name',
      events.flatMap((e) => (e.kind === 'send' ? e.data.map((d) => dnsQueryName(d) ?? '') : [])).join('\n'),
    ],
    ['a connection it made', run.records.map((r) => `${r.target ?? ''}\n${r.data ?? ''}`).join('\n')],
    ['its output', run.output],
  ];
  for (const c of canaries) {
    const needles = canaryNeedles(c.value);
    for (const [where, text] of places) {
      const lower = where === 'a DNS name';
      if (needles.some((n) => (lower ? text.includes(n.toLowerCase()) : text.includes(n))))
        add(c.name, `its value in ${where}`);
    }
  }
  return [...found.values()];
}

function writesOf(events: readonly TraceEvent[]): string[] {
  const paths = new Set<string>();
  for (const e of events) {
    const writes = (e.kind === 'open' && e.write) || e.kind === 'change';
    if (!writes) continue;
    const path = e.path.startsWith('/') || e.path.startsWith('(') ? e.path : `/workspace/${e.path}`;
    if (OWN_FILES.has(path) || OWN_AREAS.some((a) => path.startsWith(a))) continue;
    paths.add(`${path}${e.ok ? '' : ` (refused: ${e.error ?? 'error'})`}`);
  }
  return [...paths];
}

function findingsOf(b: ToolBehaviour, sockets: readonly SocketSeen[], untraced: boolean): BehaviourFinding[] {
  const tool = b.tool;
  const out: BehaviourFinding[] = [];
  const add = (rule: BehaviourFinding['rule'], severity: BehaviourFinding['severity'], message: string) =>
    out.push({ rule, severity, tool, message });
  if (untraced)
    add('untraced', 'critical', 'no process of it was traced: it ran untraced or stopped its tracer');
  for (const h of b.hosts) {
    const where = `${h.host}${h.port ? `:${h.port}` : ''} (${h.via})`;
    const bare = h.host.replace(/^\[|\]$/g, '');
    if (METADATA.has(bare)) add('metadata', 'critical', `tried the cloud metadata address ${where}`);
    else if (!h.declared)
      add(
        'undeclared-host',
        'critical',
        `tried ${where}, a host its manifest does not declare${isIP(bare) ? ' (a bare address)' : ''}`,
      );
    else add('declared-host', 'info', `tried ${where}, which it declares`);
  }
  for (const s of sockets) {
    if (s.unix) add('unix-socket', 'critical', `connected to ${s.text}`);
    else if (s.local) add('local-port', 'warning', `connected to ${s.text} inside the sandbox`);
  }
  for (const c of b.canaries) add('canary', 'critical', `canary ${c.canary}: ${c.how}`);
  for (const f of b.filesWritten) add('write-outside', 'warning', `wrote ${f}, outside /workspace and /tmp`);
  if (b.timedOut) add('timeout', 'warning', `still running after its time limit (${b.ms} ms): killed`);
  if (b.overMemory)
    add('memory', 'warning', `went past its memory limit (${Math.round(b.maxRssKb / 1024)} MiB): killed`);
  return out;
}
