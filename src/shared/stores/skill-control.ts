import { z } from 'zod';
import { parseSkillRef } from '../../contracts/policy/skill-ref.js';

/** An admin's `skill …` command in chat; gateways hand it to a worker (see skill-commands.ts). */
export const SkillCommand = z.discriminatedUnion('action', [
  z.object({ action: z.literal('list') }),
  z.object({
    action: z.literal('enable'),
    name: z.string().max(100),
    version: z.string().max(100).optional(),
  }),
  z.object({ action: z.literal('disable'), name: z.string().max(100) }),
  z.object({ action: z.literal('invalid'), message: z.string().max(1000) }),
]);
export type SkillCommand = z.infer<typeof SkillCommand>;

export const SKILL_USAGE = 'skill enable NAME[@VERSION] | skill disable NAME | skills (lists them)';

/** Reads an admin's `skill …` words (chat-platform neutral): `enable weather`, `disable weather`, `list`. */
export function parseSkillCommand(words: readonly string[]): SkillCommand {
  const [action = 'list', target, extra] = words.map((w) => w.trim()).filter(Boolean);
  const verb = action.toLowerCase();
  if (verb === 'list' || verb === 'ls' || verb === 'show') return { action: 'list' };
  if (verb !== 'enable' && verb !== 'disable') {
    return { action: 'invalid', message: `unknown skill action "${action}": ${SKILL_USAGE}` };
  }
  if (!target || extra) return { action: 'invalid', message: `name one skill: ${SKILL_USAGE}` };
  const ref = parseSkillRef(target);
  if (!ref)
    return { action: 'invalid', message: `"${target}" is not a skill name (e.g. weather or weather@1.0.0)` };
  if (verb === 'disable') return { action: 'disable', name: ref.name };
  return { action: 'enable', name: ref.name, ...(ref.version ? { version: ref.version } : {}) };
}
