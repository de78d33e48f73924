import { type Grant, isGranted } from '../../../contracts/policy/network-policy.js';
import type { Finding } from '../finding.js';
import { scanJavaScript } from './js-scan.js';
import { scanPython } from './python-scan.js';
import { literalSuffix, type ScriptFinding, toFinding } from './script-finding.js';
import { scanShell } from './shell-scan.js';
import { type ScriptLanguage, withSyntaxTree } from './syntax-trees.js';

const READERS = { bash: scanShell, python: scanPython, javascript: scanJavaScript } as const;

/** The parsed half of the scan over one script; nothing for other files (the line rules' alone). */
export async function scanParsed(
  path: string,
  text: string,
  declared: readonly Grant[],
  language?: ScriptLanguage,
): Promise<Finding[]> {
  if (!language) return [];
  const lines = text.replace(/\r\n?/g, '\n').split('\n');
  const found = await withSyntaxTree(language, text, (root) => READERS[language](root));
  return (found ?? []).map((f) => toFinding(path, lines, undeclaredSuffix(f, declared) ?? f));
}

/** A run-time host under a literal domain the manifest does not declare: critical, not a warning. */
function undeclaredSuffix(found: ScriptFinding, declared: readonly Grant[]): ScriptFinding | undefined {
  const suffix = found.rule === 'dynamic-host' && found.host ? literalSuffix(found.host) : undefined;
  if (!suffix) return undefined;
  const probe = `x.${suffix}`;
  if (declared.some((grant) => isGranted([grant], probe, Number(grant.split(':')[1] ?? 443))))
    return undefined;
  return {
    ...found,
    rule: 'undeclared-host',
    severity: 'critical',
    message: `reaches names built at run time under ${suffix} (${found.host}), which the manifest does not declare in permissions.hosts: data can leave in the name itself`,
  };
}
