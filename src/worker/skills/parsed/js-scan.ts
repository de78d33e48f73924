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
 * What a JavaScript tool does, read from its syntax tree: code run from decoded data (through a
 * variable too), the whole process.env, and requests to hosts built at run time.
 */

const RUNS_CODE =
  /^(eval|Function|vm\.runInNewContext|vm\.runInThisContext|vm\.runInContext|vm\.compileFunction|runInNewContext|runInThisContext)$/;
const DECODES =
  /(^atob$|Buffer\.from|\.toString$|^unescape$|decodeURIComponent$|inflateSync|gunzipSync|brotliDecompressSync|fromCharCode$)/;
const NETWORK_CALL =
  /^(fetch|axios(\.(get|post|put|request))?|https?\.(get|request)|net\.(connect|createConnection)|tls\.connect|got(\.(get|post))?|request|undici\.(request|fetch))$/;
const SOURCES: CodeSources = { callType: 'call_expression', network: NETWORK_CALL, decodes: DECODES };

export function scanJavaScript(root: Node): ScriptFinding[] {
  const assigned = new Map<string, Node>();
  for (const node of root.descendantsOfType('variable_declarator')) {
    const name = node?.childForFieldName('name');
    const value = node?.childForFieldName('value');
    if (name?.type === 'identifier' && value) assigned.set(name.text, value);
  }
  const found: ScriptFinding[] = [];
  for (const node of walk(root)) {
    if (node.type === 'call_expression' || node.type === 'new_expression')
      found.push(...callFindings(node, assigned));
    if (node.type === 'member_expression' && node.text === 'process.env' && wholeEnv(node)) {
      found.push({
        rule: 'environment',
        severity: 'critical',
        node,
        message: 'reads the whole environment (process.env as a whole)',
      });
    }
  }
  return found;
}

function callFindings(call: Node, assigned: Map<string, Node>): ScriptFinding[] {
  const callee = (call.childForFieldName('function') ?? call.childForFieldName('constructor'))?.text ?? '';
  const args = call.childForFieldName('arguments')?.namedChildren ?? [];
  const code = callee === 'Function' ? args.at(-1) : args[0];
  if (RUNS_CODE.test(callee) && code && code.type !== 'string')
    return [runsCode(call, callee, originOf(code, assigned, SOURCES))];
  const first = args[0];
  if (NETWORK_CALL.test(callee) && first) {
    const host = builtHost(first, assigned);
    if (host) return [runTimeHostFinding(call, host)];
  }
  return [];
}

/** The shown host of a request target that is built at run time; undefined for a literal one. */
function builtHost(arg: Node, assigned: Map<string, Node>, hops = 0): string | undefined {
  if (arg.type === 'string') return undefined;
  if (arg.type === 'template_string') return runTimeHost(arg.text.slice(1, -1).replace(/\$\{/g, '$${'));
  if (arg.type === 'identifier' && hops < 4) {
    const value = assigned.get(arg.text);
    return value ? builtHost(value, assigned, hops + 1) : arg.text;
  }
  if (arg.type === 'object') {
    const host = arg.namedChildren.find((pair) =>
      /^(host|hostname)$/.test(pair?.childForFieldName('key')?.text ?? ''),
    );
    const value = host?.childForFieldName('value');
    return value && value.type !== 'string' ? value.text : undefined;
  }
  if (arg.type === 'new_expression' || arg.type === 'call_expression') return undefined; // new URL(…): read as is
  return arg.text.length > 60 ? `${arg.text.slice(0, 59)}…` : arg.text;
}

/** process.env used whole: not a property read, not `in`. */
function wholeEnv(node: Node): boolean {
  const parent = node.parent;
  if (!parent) return false;
  if (
    (parent.type === 'member_expression' || parent.type === 'subscript_expression') &&
    parent.childForFieldName('object')?.id === node.id
  )
    return false;
  if (parent.type === 'pair' && parent.childForFieldName('key')?.text === 'env') return false; // spawn(…, { env: process.env })
  if (parent.type === 'spread_element' && parent.parent?.parent?.type === 'pair') return false; // { env: { ...process.env } }
  if (parent.type === 'binary_expression' && parent.text.includes(' in ')) return false;
  return true;
}
