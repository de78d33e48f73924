import type { Node } from 'web-tree-sitter';
import {
  type CodeSources,
  originOf,
  runsCode,
  runTimeHost,
  runTimeHostFinding,
  type ScriptFinding,
} from './script-finding.js';
import { walk } from './syntax-trees.js';

/**
 * What a Python script does, read from its syntax tree: code run from decoded data (also through a
 * variable, on another line), shell command lines, the whole environment, and network calls to hosts
 * built at run time. Unix sockets and literal hosts are the line rules' (they see every language).
 */

const RUNS_CODE = /^(exec|eval|compile|__import__\(['"]builtins['"]\)\.exec|builtins\.(exec|eval))$/;
const DECODES =
  /(b64decode|b32decode|b16decode|a85decode|b85decode|decodebytes|decodestring|unhexlify|fromhex|decompress|marshal\.loads|codecs\.decode|\.decode|bytes\.fromhex|\.translate)$/;
const NETWORK_CALL =
  /^(urllib\.request\.urlopen\(.*\)\.read|requests\.(get|post|put|patch|delete|head|request)|httpx\.(get|post|put|request|stream)|urllib\.request\.(urlopen|Request)|urlopen|Request|http\.client\.HTTPS?Connection|HTTPS?Connection|socket\.create_connection|create_connection|urllib3\.request|session\.(get|post))$/;
const SOURCES: CodeSources = { callType: 'call', network: NETWORK_CALL, decodes: DECODES };
const SHELL_CALL = /^(subprocess\.(run|call|check_call|check_output|Popen)|os\.system|os\.popen)$/;

export function scanPython(root: Node): ScriptFinding[] {
  const assigned = assignments(root);
  const found: ScriptFinding[] = [];
  for (const node of walk(root)) {
    if (node.type === 'call') found.push(...callFindings(node, assigned));
    if (node.type === 'attribute' && node.text === 'os.environ' && wholeEnviron(node)) {
      found.push({
        rule: 'environment',
        severity: 'critical',
        node,
        message: 'reads the whole environment (os.environ as a whole)',
      });
    }
  }
  return found;
}

/** Names assigned in the script, each to the last value given (enough to follow `p = b64decode(…)`). */
function assignments(root: Node): Map<string, Node> {
  const map = new Map<string, Node>();
  for (const node of root.descendantsOfType('assignment')) {
    const left = node?.childForFieldName('left');
    const right = node?.childForFieldName('right');
    if (left?.type === 'identifier' && right) map.set(left.text, right);
  }
  return map;
}

function callFindings(call: Node, assigned: Map<string, Node>): ScriptFinding[] {
  const name = call.childForFieldName('function')?.text ?? '';
  const args = call.childForFieldName('arguments');
  const first = args?.namedChildren.find((arg) => arg?.type !== 'keyword_argument') ?? undefined;
  if (RUNS_CODE.test(name) && first && first.type !== 'string')
    return [runsCode(call, name, originOf(first, assigned, SOURCES))];
  if (name === 'os.fork' && insideLoop(call)) {
    return [
      { rule: 'resource-abuse', severity: 'critical', node: call, message: 'forks in a loop (a fork bomb)' },
    ];
  }
  if (SHELL_CALL.test(name)) {
    const shell = name.startsWith('os.') || /\bshell\s*=\s*True\b/.test(args?.text ?? '');
    if (shell) {
      return [
        {
          rule: 'shell-command',
          severity: 'warning',
          node: call,
          message: `runs a shell command line (${name}${name.startsWith('os.') ? '' : ', shell=True'})`,
        },
      ];
    }
  }
  if (NETWORK_CALL.test(name) && first) {
    const host = targetBuiltAtRunTime(first, assigned);
    if (host) return [runTimeHostFinding(call, host)];
  }
  return [];
}

function insideLoop(node: Node): boolean {
  for (let up = node.parent; up; up = up.parent) {
    if (up.type === 'while_statement' || up.type === 'for_statement') return true;
    if (up.type === 'function_definition') return false;
  }
  return false;
}

/** The shown form of a call's URL or host argument when it is not a literal; undefined when it is. */
function targetBuiltAtRunTime(arg: Node, assigned: Map<string, Node>, hops = 0): string | undefined {
  if (arg.type === 'string') {
    const interpolated = arg.namedChildren.some((c) => c?.type === 'interpolation');
    return interpolated ? runTimeHost(arg.text.replace(/^[a-zA-Z]*['"]+|['"]+$/g, '')) : undefined;
  }
  if (arg.type === 'identifier' && hops < 4) {
    const value = assigned.get(arg.text);
    return value ? targetBuiltAtRunTime(value, assigned, hops + 1) : arg.text;
  }
  if (arg.type === 'tuple') {
    const host = arg.namedChildren[0];
    return host && host.type !== 'string' ? host.text : undefined;
  }
  // Concatenation, format(), %: the host may well be among the parts.
  return arg.text.length > 60 ? `${arg.text.slice(0, 59)}…` : arg.text;
}

/** os.environ used whole: not indexed, not .get(…), not assigned into. */
function wholeEnviron(node: Node): boolean {
  const parent = node.parent;
  if (!parent) return false;
  if (parent.type === 'subscript' && parent.childForFieldName('value')?.id === node.id) return false;
  if (parent.type === 'attribute') {
    const attribute = parent.childForFieldName('attribute')?.text ?? '';
    return ['items', 'keys', 'values', 'copy', '__dict__', '_data'].includes(attribute);
  }
  if (parent.type === 'comparison_operator') return false; // "X" in os.environ
  // Handed on to a child process (env=os.environ, env={**os.environ, …}): not read by the skill.
  if (parent.type === 'keyword_argument') return false;
  if (parent.type === 'dictionary_splat' && parent.parent?.parent?.type === 'keyword_argument') return false;
  return true;
}
