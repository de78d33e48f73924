import type { Node } from 'web-tree-sitter';
import { runTimeHost, runTimeHostFinding, type ScriptFinding } from './script-finding.js';
import { walk } from './syntax-trees.js';

/**
 * What a shell script does, read from its syntax tree: environment dumps in any spelling, a download
 * saved and then run (on another line, through a variable, chmod +x), downloads run through a process
 * or command substitution, and hosts built at run time.
 */

const FETCHERS = new Set(['curl', 'wget', 'aria2c', 'fetch', 'http', 'https', 'lwp-download']);
const RUNNERS = new Set([
  'bash',
  'sh',
  'zsh',
  'dash',
  'ksh',
  'source',
  '.',
  'python',
  'python3',
  'node',
  'perl',
  'ruby',
  'php',
]);
const NET_TOOLS = new Set([
  ...FETCHERS,
  'nc',
  'ncat',
  'netcat',
  'socat',
  'telnet',
  'ssh',
  'scp',
  'rsync',
  'git',
  'dig',
  'nslookup',
  'host',
]);

interface Command {
  node: Node;
  name: string;
  args: string[];
}

/** A word as the shell would see it after quote removal (expansions kept as written). */
const unquote = (text: string) => text.replace(/^(['"])(.*)\1$/s, '$2');
const baseName = (path: string) => unquote(path).replace(/^.*\//, '');

function commandOf(node: Node): Command | undefined {
  const name = node.childForFieldName('name');
  if (!name) return undefined;
  const args = node.childrenForFieldName('argument').flatMap((arg) => (arg ? [unquote(arg.text)] : []));
  return { node, name: baseName(name.text), args };
}

export function scanShell(root: Node): ScriptFinding[] {
  const found: ScriptFinding[] = [];
  const downloaded = new Set<string>();
  for (const node of walk(root)) {
    if (node.type === 'expansion' && /^\$\{!/.test(node.text)) {
      found.push({
        rule: 'environment',
        severity: 'critical',
        node,
        message: `reads variables by indirect name (${node.text}): a way to walk the whole environment`,
      });
    }
    if (
      (node.type === 'process_substitution' || node.type === 'command_substitution') &&
      fetchesInside(node)
    ) {
      const parent = node.parent;
      const runner = parent?.type === 'command' ? commandOf(parent) : undefined;
      if (runner && (RUNNERS.has(runner.name) || runner.name === 'eval')) found.push(runsDownload(node));
    }
    if (node.type === 'declaration_command') found.push(...declarationDump(node));
    if (node.type !== 'command') continue;
    const command = commandOf(node);
    if (!command) continue;
    found.push(...environmentDump(command), ...runTimeHosts(command));
    for (const file of savedFiles(command, node)) downloaded.add(file);
    if (runsSaved(command, downloaded)) found.push(runsDownload(node));
  }
  return found;
}

function runsDownload(node: Node): ScriptFinding {
  return {
    rule: 'pipe-to-shell',
    severity: 'critical',
    node,
    message: 'runs code it downloaded (saved, then run; or run from a substitution)',
  };
}

function fetchesInside(node: Node): boolean {
  for (const inner of walk(node)) {
    if (inner.type === 'command' && FETCHERS.has(commandOf(inner)?.name ?? '')) return true;
  }
  return false;
}

function environmentDump({ node, name, args }: Command): ScriptFinding[] {
  const options = args.filter((a) => a.startsWith('-'));
  const dump =
    ((name === 'env' || name === 'printenv') && args.every((a) => a.startsWith('-'))) ||
    (name === 'compgen' &&
      (options.some((o) => /^-[a-zA-Z]*[ev]/.test(o)) || /-A\s*(variable|export)/.test(args.join(' ')))) ||
    (name === 'set' && args.length === 0);
  const proc = args.some((a) => /\/proc\/[^/\s]+\/environ\b/.test(a));
  if (!dump && !proc) return [];
  return [
    {
      rule: 'environment',
      severity: 'critical',
      node,
      message: proc
        ? 'reads a process environment from /proc'
        : `dumps the environment (${node.text.slice(0, 40)})`,
    },
  ];
}

/** `declare -x`, `declare -p`, `typeset -p`, `export` or `export -p` alone: each prints the environment. */
function declarationDump(node: Node): ScriptFinding[] {
  const [name, ...args] = node.text
    .replace(/[;&|>].*$/s, '')
    .trim()
    .split(/\s+/);
  const printsAll =
    args.every((a) => a.startsWith('-')) &&
    (name === 'export' ||
      ((name === 'declare' || name === 'typeset') && args.some((a) => /^-[a-zA-Z]*[px]/.test(a))));
  if (!printsAll) return [];
  return [
    {
      rule: 'environment',
      severity: 'critical',
      node,
      message: `dumps the environment (${node.text.slice(0, 40)})`,
    },
  ];
}

function runTimeHosts({ node, name, args }: Command): ScriptFinding[] {
  const found: ScriptFinding[] = [];
  for (const arg of args) {
    const host = runTimeHost(arg) ?? /^\/dev\/(tcp|udp)\/(\$[^/]+)/.exec(arg)?.[2];
    if (host) found.push(runTimeHostFinding(node, host));
  }
  // nc "$h" 443, dig "$data.$zone": a network tool whose host is a variable.
  if (found.length === 0 && NET_TOOLS.has(name) && !FETCHERS.has(name)) {
    const target = args.find((a) => !a.startsWith('-') && a.includes('$'));
    if (target) found.push(runTimeHostFinding(node, target));
  }
  return found;
}

/** Files a download command writes: curl -o/-O, wget -O or its default name, or a redirect. */
function savedFiles({ name, args }: Command, node: Node): string[] {
  if (!FETCHERS.has(name)) return [];
  const files: string[] = [];
  const url = args.find((a) => /^[a-z]+:\/\//i.test(a));
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? '';
    const next = args[i + 1];
    if ((arg === '-o' || arg === '--output' || (name === 'wget' && arg === '-O')) && next) files.push(next);
    else if (/^--output=|^-O./.test(arg) && name !== 'curl') files.push(arg.replace(/^--output=|^-O/, ''));
    else if (name === 'curl' && (arg === '-O' || arg === '--remote-name') && url) files.push(url);
  }
  if (name === 'wget' && !args.some((a) => /^-(O|-output-document)/.test(a)) && url) files.push(url);
  const redirect = node.parent?.type === 'redirected_statement' ? node.parent : undefined;
  for (const target of redirect?.descendantsOfType('file_redirect') ?? []) {
    const dest = target?.childForFieldName('destination');
    if (dest) files.push(dest.text);
  }
  return files.map(baseName).filter((f) => f !== '' && f !== '-' && !f.startsWith('/dev/'));
}

function runsSaved({ name, args }: Command, downloaded: ReadonlySet<string>): boolean {
  if (downloaded.size === 0) return false;
  if (downloaded.has(name)) return true; // ./setup.sh after chmod +x
  if (!RUNNERS.has(name)) return false;
  const script = args.find((a) => !a.startsWith('-'));
  return script !== undefined && downloaded.has(baseName(script));
}
