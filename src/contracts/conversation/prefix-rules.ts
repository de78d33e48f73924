/**
 * Config rules of the form `<conversation-prefix>=<values>;…` (network grants, skills): split into
 * rules, each prefix checked to name a platform. Which conversations a prefix covers is
 * `coversConversation` (id.ts); what the values mean is the caller's.
 */
export interface PrefixRule {
  prefix: string;
  values: string;
  /** The rule as written, for error messages. */
  part: string;
}

export function splitPrefixRules(text: string | undefined, valuesName: string): PrefixRule[] {
  const rules: PrefixRule[] = [];
  for (const part of (text ?? '')
    .split(';')
    .map((p) => p.trim())
    .filter(Boolean)) {
    const eq = part.indexOf('=');
    const prefix = part.slice(0, eq).trim();
    if (eq < 1 || !/^(web|slack|discord)(:|$)/.test(prefix))
      throw new Error(`"${part}": a rule is <conversation-prefix>=<${valuesName}>`);
    rules.push({ prefix, values: part.slice(eq + 1), part });
  }
  return rules;
}
