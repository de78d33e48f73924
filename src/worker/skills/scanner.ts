import { type Grant, isGranted } from '../../contracts/policy/network-policy.js';
import type { Finding } from './finding.js';
import type { SkillFile } from './hashing.js';
import type { SkillManifest } from './manifest.js';
import { scanParsed } from './parsed/parsed-scan.js';
import { type ScriptLanguage, scriptLanguage } from './parsed/syntax-trees.js';
import { isDocument, LINE_RULES } from './scan-rules.js';

export type { Finding };

/**
 * The static scan of a skill before anyone approves it: pure, over the files' bytes and the manifest.
 * It reports; it does not decide. Approval refuses critical findings unless the admin accepts them.
 */

const EXCERPT_CHARS = 160;
/** Findings of one rule in one file past this are counted in one summary finding, not listed. */
const PER_RULE_PER_FILE = 5;

export function scanSkill(manifest: SkillManifest | undefined, files: readonly SkillFile[]): Finding[] {
  const findings: Finding[] = [];
  const hosts = manifest?.permissions.hosts ?? [];
  const interpreters = toolInterpreters(manifest);
  for (const file of files) {
    const binary = binaryKind(file.bytes);
    if (binary) {
      findings.push({
        rule: 'binary',
        severity: 'critical',
        file: file.path,
        message: `is a binary (${binary}): skills hold only text and scripts anyone can read`,
      });
      continue;
    }
    const text = file.bytes.toString('utf8');
    const language = scriptLanguage(file.path, text, interpreters.get(file.path));
    findings.push(...capPerRule(scanText(file.path, text, hosts, language)));
  }
  for (const grant of hosts) {
    const pattern = grant.split(':')[0] ?? '';
    if (pattern.startsWith('*.') && pattern.split('.').length <= 3) {
      findings.push({
        rule: 'broad-host',
        severity: 'warning',
        file: 'manifest',
        message: `asks for "${grant}", a broad pattern: prefer the exact hosts it needs`,
      });
    }
    if (/^[\d.]+$/.test(pattern)) {
      findings.push({
        rule: 'broad-host',
        severity: 'warning',
        file: 'manifest',
        message: `asks for the address "${grant}": prefer a host name`,
      });
    }
  }
  return findings;
}

/** The line rules and the network check over one text file. */
export function scanText(
  path: string,
  text: string,
  declared: readonly Grant[],
  language?: ScriptLanguage,
): Finding[] {
  const findings: Finding[] = [];
  const document = isDocument(path);
  for (const { line, text: content } of logicalLines(text)) {
    const excerpt = shorten(content.trim());
    for (const rule of LINE_RULES) {
      if (language && rule.parsedAway?.includes(language)) continue;
      if (rule.pattern.test(content)) {
        findings.push({
          rule: rule.id,
          severity: rule.severity,
          file: path,
          line,
          excerpt,
          message: rule.message,
        });
      }
    }
    for (const target of networkTargets(content)) {
      if (targetDeclared(declared, target)) continue;
      findings.push({
        rule: 'undeclared-host',
        severity: document ? 'warning' : 'critical',
        file: path,
        line,
        excerpt,
        message: `contacts ${target.host}${target.port ? `:${target.port}` : ''}, which the manifest does not declare in permissions.hosts`,
      });
    }
  }
  return findings;
}

/**
 * Whether the manifest declares a target: on its port, or, when the code builds the port at run time
 * (`http://host:${port}`), on any port the manifest names for that host.
 */
function targetDeclared(declared: readonly Grant[], target: NetworkTarget): boolean {
  if (!target.dynamicPort) return isGranted(declared, target.host, target.port ?? defaultPort(target.scheme));
  return declared.some((grant) => {
    const port = Number(grant.split(':')[1] ?? defaultPort(target.scheme));
    return isGranted([grant], target.host, port);
  });
}

export interface NetworkTarget {
  host: string;
  port?: number;
  /** The port is built at run time (`:${port}`): only the host can be checked. */
  dynamicPort?: boolean;
  scheme?: string;
}

/** Hosts a line reaches out to: URLs, /dev/tcp, nc/telnet/socat, socket connects. Dynamic hosts are skipped. */
export function networkTargets(line: string): NetworkTarget[] {
  const found: NetworkTarget[] = [];
  const add = (host: string | undefined, port?: string, scheme?: string) => {
    const dynamicPort = port !== undefined && !/^\d+$/.test(port);
    const name = (host ?? '').toLowerCase().replace(/\.$/, '');
    // A host built at run time ($HOST, {host}, %s) cannot be checked statically.
    if (!name || /[$%{}<>`\\]/.test(name) || !/^[a-z0-9.[\]:_-]+$/.test(name) || !/[a-z0-9]/.test(name))
      return;
    found.push({
      host: name.replace(/^\[|\]$/g, ''),
      ...(port && !dynamicPort ? { port: Number(port) } : {}),
      ...(dynamicPort ? { dynamicPort } : {}),
      ...(scheme ? { scheme } : {}),
    });
  };
  for (const m of line.matchAll(
    /\b(https?|wss?|ftp|ftps|sftp|ssh|git|rsync|telnet):\/\/(?:[^\s/@'"`]+@)?(\[[0-9a-fA-F:.]+\]|[^\s/:'"`<>\\)\]}?#,;|]+)(?::(\d{1,5}|[$%{][^\s/'"`]*))?/g,
  )) {
    add(m[2], m[3], m[1]?.toLowerCase());
  }
  for (const m of line.matchAll(/\/dev\/(?:tcp|udp)\/([^/\s'"]+)\/(\d{1,5})/g)) add(m[1], m[2]);
  for (const m of line.matchAll(
    /\b(?:nc|ncat|netcat|telnet|socat)\b(?:\s+-{1,2}[A-Za-z-]+(?:\s+[^\s-]\S*)?)*?\s+([A-Za-z0-9][A-Za-z0-9.-]*\.[A-Za-z]{2,}|\d{1,3}(?:\.\d{1,3}){3})\s+(\d{1,5})\b/g,
  )) {
    add(m[1], m[2]);
  }
  for (const m of line.matchAll(
    /\b(?:connect|create_connection)\s*\(\s*\(\s*['"]([^'"]+)['"]\s*,\s*(\d{1,5})/g,
  ))
    add(m[1], m[2]);
  for (const m of line.matchAll(
    /\b(?:scp|rsync)\b[^\n]*\s(?:[^\s@]+@)?([A-Za-z0-9][A-Za-z0-9.-]*\.[A-Za-z]{2,}):/g,
  ))
    add(m[1]);
  return found;
}

function defaultPort(scheme: string | undefined): number {
  switch (scheme) {
    case 'http':
    case 'ws':
      return 80;
    case 'ftp':
      return 21;
    case 'ssh':
    case 'sftp':
      return 22;
    default:
      return 443;
  }
}

/** Lines with shell continuations (a trailing backslash) joined, each with the number it starts on. */
export function logicalLines(text: string): { line: number; text: string }[] {
  const out: { line: number; text: string }[] = [];
  const lines = text.replace(/\r\n?/g, '\n').split('\n');
  for (let i = 0; i < lines.length; i++) {
    const start = i;
    let content = lines[i] ?? '';
    while (content.endsWith('\\') && i + 1 < lines.length) {
      i += 1;
      content = `${content.slice(0, -1)} ${lines[i] ?? ''}`;
    }
    if (content.trim() !== '') out.push({ line: start + 1, text: content });
  }
  return out;
}

/** What kind of binary the bytes are, or undefined for text. */
export function binaryKind(bytes: Buffer): string | undefined {
  const head = bytes.subarray(0, 8);
  const magic: [string, number[]][] = [
    ['ELF executable', [0x7f, 0x45, 0x4c, 0x46]],
    ['Mach-O executable', [0xcf, 0xfa, 0xed, 0xfe]],
    ['Mach-O executable', [0xfe, 0xed, 0xfa, 0xce]],
    ['universal binary or Java class', [0xca, 0xfe, 0xba, 0xbe]],
    ['zip archive', [0x50, 0x4b, 0x03, 0x04]],
    ['gzip archive', [0x1f, 0x8b]],
    ['WebAssembly module', [0x00, 0x61, 0x73, 0x6d]],
    ['Windows executable', [0x4d, 0x5a]],
  ];
  for (const [name, sig] of magic) {
    if (sig.every((byte, i) => head[i] === byte)) {
      // "MZ" also starts ordinary text; count it only with a NUL nearby.
      if (name === 'Windows executable' && !bytes.subarray(0, 512).includes(0)) continue;
      return name;
    }
  }
  if (bytes.subarray(0, 8192).includes(0)) return 'contains NUL bytes';
  const decoded = bytes.toString('utf8');
  const replaced = decoded.split('\uFFFD').length - 1;
  if (replaced > 0 && replaced > decoded.length / 100) return 'not UTF-8 text';
  return undefined;
}

function capPerRule(findings: Finding[]): Finding[] {
  const counts = new Map<string, number>();
  const kept: Finding[] = [];
  for (const finding of findings) {
    const key = `${finding.rule}:${finding.message}`;
    const n = (counts.get(key) ?? 0) + 1;
    counts.set(key, n);
    if (n <= PER_RULE_PER_FILE) kept.push(finding);
  }
  for (const [key, n] of counts) {
    if (n <= PER_RULE_PER_FILE) continue;
    const sample = findings.find((f) => `${f.rule}:${f.message}` === key);
    if (sample)
      kept.push({
        ...sample,
        line: undefined,
        excerpt: undefined,
        message: `${n - PER_RULE_PER_FILE} more: ${sample.message}`,
      });
  }
  return kept;
}

function shorten(text: string): string {
  return text.length > EXCERPT_CHARS ? `${text.slice(0, EXCERPT_CHARS - 1)}…` : text;
}

/**
 * The whole static scan: the line rules over every file, then each script read through its syntax
 * tree (what spans lines or hides behind variables). A parsed finding on a line a line rule already
 * reported under the same rule is not repeated.
 */
export async function scanSkillFiles(
  manifest: SkillManifest | undefined,
  files: readonly SkillFile[],
): Promise<Finding[]> {
  const findings = scanSkill(manifest, files);
  const seen = new Set(findings.map((f) => `${f.rule}|${f.file}|${f.line}`));
  const interpreters = toolInterpreters(manifest);
  for (const file of files) {
    if (binaryKind(file.bytes)) continue;
    const text = file.bytes.toString('utf8');
    const language = scriptLanguage(file.path, text, interpreters.get(file.path));
    const parsed = await scanParsed(file.path, text, manifest?.permissions.hosts ?? [], language);
    for (const finding of capPerRule(parsed)) {
      const key = `${finding.rule}|${finding.file}|${finding.line}`;
      if (seen.has(key)) continue;
      seen.add(key);
      findings.push(finding);
    }
  }
  return findings;
}

/** Each tool script's interpreter, as the manifest names it. */
function toolInterpreters(manifest: SkillManifest | undefined): Map<string, string | undefined> {
  return new Map(manifest?.tools.map((t) => [t.run, t.interpreter]) ?? []);
}

export function hasCritical(findings: readonly Finding[]): boolean {
  return findings.some((f) => f.severity === 'critical');
}
