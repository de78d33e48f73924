import { z } from 'zod';
import { coversConversation } from '../conversation/id.js';
import { splitPrefixRules } from '../conversation/prefix-rules.js';

/** Which model answers where (SANDBOT_MODEL_RULES), by conversation prefix: pure, no I/O. */

/**
 * A model name as Ollama and OpenAI-compatible servers write them: `qwen2.5:7b`,
 * `hf.co/org/repo:Q4_K_M`, `gpt-4o-mini`. No spaces, commas or `;` (they separate rules).
 */
export const ModelName = z
  .string()
  .trim()
  .min(1, 'a model name')
  .max(200, 'a model name of at most 200 characters')
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$/, 'a model name (letters, digits and . _ : / @ + -)');

export interface ModelRule {
  prefix: string;
  model: string;
}

/** `prefix=model;prefix=model`: one model per rule, each prefix once. */
export const ModelRules = z
  .string()
  .optional()
  .transform((text, ctx): ModelRule[] => {
    try {
      return parseModelRules(text);
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: (error as Error).message });
      return z.NEVER;
    }
  });
export type ModelRules = z.infer<typeof ModelRules>;

function parseModelRules(text: string | undefined): ModelRule[] {
  const seen = new Set<string>();
  return splitPrefixRules(text, 'model').map((rule) => {
    const words = rule.values.split(/[\s,]+/).filter(Boolean);
    if (words.length !== 1)
      throw new Error(`"${rule.part}": one model per rule, e.g. slack:T1:C2=qwen2.5:7b`);
    const parsed = ModelName.safeParse(words[0]);
    if (!parsed.success) throw new Error(`"${rule.part}": ${parsed.error.issues[0]?.message ?? 'bad model'}`);
    if (seen.has(rule.prefix)) throw new Error(`"${rule.prefix}" has more than one model rule`);
    seen.add(rule.prefix);
    return { prefix: rule.prefix, model: parsed.data };
  });
}

/**
 * The model for a conversation: the rule with the longest prefix covering it (a thread's rule beats
 * its channel's, a channel's its workspace's), else the default. Prefixes match as network grants do.
 */
export function modelFor(rules: readonly ModelRule[], defaultModel: string, conversation: string): string {
  let best: ModelRule | undefined;
  for (const rule of rules) {
    if (!coversConversation(rule.prefix, conversation)) continue;
    if (!best || specificity(rule.prefix) >= specificity(best.prefix)) best = rule;
  }
  return best?.model ?? defaultModel;
}

/** How much of an id a prefix pins down (`*` and a trailing `:` add nothing). */
function specificity(prefix: string): number {
  return prefix.replace(/[*:]$/, '').length;
}
