import type { Node } from 'web-tree-sitter';
import type { Finding } from '../finding.js';
import type { RuleId, Severity } from '../scan-rules.js';
import { lineOf, walk } from './syntax-trees.js';

/** What a parsed-script reader reports: a rule, how bad, where, and why in words. */
export interface ScriptFinding {
  rule: RuleId;
  severity: Severity;
  node: Node;
  message: string;
  /** For a host built at run time: the host as written. */
  host?: string;
}

const EXCERPT_CHARS = 160;

/** A finding on the line where `node` starts, its excerpt that whole source line. */
export function toFinding(path: string, lines: readonly string[], found: ScriptFinding): Finding {
  const line = lineOf(found.node);
  const text = (lines[line - 1] ?? found.node.text).trim();
  return {
    rule: found.rule,
    severity: found.severity,
    file: path,
    line,
    excerpt: text.length > EXCERPT_CHARS ? `${text.slice(0, EXCERPT_CHARS - 1)}…` : text,
    message: found.message,
  };
}

/** The host part of a URL written with parts filled in at run time, when that part is not literal. */
export function runTimeHost(url: string): string | undefined {
  const match = /^[a-z][a-z0-9+.-]*:\/\/(?:[^/@\s]*@)?([^/:?#\s]*)/i.exec(url);
  const host = match?.[1];
  return host !== undefined && /[$%{}`]|\+/.test(host) ? host : undefined;
}

export const runTimeHostFinding = (node: Node, shown: string): ScriptFinding => ({
  rule: 'dynamic-host',
  severity: 'warning',
  node,
  message: `reaches a host built at run time (${shown}): the scan cannot check it against permissions.hosts`,
  host: shown,
});

/**
 * The literal domain a run-time host ends in (`$data.exfil.evil.test` → `exfil.evil.test`), when it has
 * at least two labels: names built under it carry data out even through DNS lookups alone.
 */
export function literalSuffix(host: string): string | undefined {
  const suffix = /(?:\}|\)|\$\w+)\.((?:[a-z0-9-]+\.)+[a-z][a-z0-9-]+)\.?$/i.exec(host)?.[1];
  return suffix?.toLowerCase();
}

/** Where data run as code came from, when the scan can tell: a decoding call, or a download. */
export type Origin = 'decoded' | 'fetched';

/** How one language spells calls, downloads and decoders. */
export interface CodeSources {
  callType: string;
  network: RegExp;
  decodes: RegExp;
}

/** The origin of a value: a download or decoding call in it, or in what a name was bound to (a few hops). */
export function originOf(
  value: Node | null | undefined,
  assigned: ReadonlyMap<string, Node>,
  sources: CodeSources,
  hops = 0,
): Origin | undefined {
  if (!value || hops > 4) return undefined;
  if (value.type === 'identifier') return originOf(assigned.get(value.text), assigned, sources, hops + 1);
  for (const inner of walk(value)) {
    const callee = inner.type === sources.callType ? (inner.childForFieldName('function')?.text ?? '') : '';
    if (callee && sources.network.test(callee)) return 'fetched';
    if (callee && sources.decodes.test(callee)) return 'decoded';
    if (inner.type === 'identifier' && inner.id !== value.id && assigned.has(inner.text)) {
      const origin = originOf(assigned.get(inner.text), assigned, sources, hops + 1);
      if (origin) return origin;
    }
  }
  return undefined;
}

/** A call that runs code (exec, eval, new Function …), judged by where that code came from. */
export function runsCode(call: Node, name: string, origin: Origin | undefined): ScriptFinding {
  if (origin === 'fetched') {
    return {
      rule: 'pipe-to-shell',
      severity: 'critical',
      node: call,
      message: `runs code it downloaded (${name})`,
    };
  }
  if (origin === 'decoded') {
    return {
      rule: 'dropper',
      severity: 'critical',
      node: call,
      message: `runs decoded data as code (${name} of a decoded payload)`,
    };
  }
  return {
    rule: 'obfuscation',
    severity: 'warning',
    node: call,
    message: `runs code built at run time (${name})`,
  };
}
