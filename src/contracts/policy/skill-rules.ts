import { z } from 'zod';
import { splitPrefixRules } from '../conversation/prefix-rules.js';
import { parseSkillRef } from './skill-ref.js';

/** Skills enabled from config (SANDBOT_SKILLS), by conversation prefix, so a whole channel at once. */

/** "name" (the newest approved version) or "name@version". */
export type EnabledRef = { name: string; version?: string };

export const SkillRules = z
  .string()
  .optional()
  .transform((text, ctx) => {
    try {
      return splitPrefixRules(text, 'skill>,<skill').map((rule) => ({
        prefix: rule.prefix,
        skills: rule.values
          .split(/[\s,]+/)
          .filter(Boolean)
          .map((word) => {
            const ref = parseSkillRef(word);
            if (!ref) throw new Error(`"${word}" is not a skill name (name or name@1.2.3)`);
            return ref;
          }),
      }));
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: (error as Error).message });
      return z.NEVER;
    }
  });
export type SkillRules = z.infer<typeof SkillRules>;
