import type { Redis } from 'ioredis';
import { z } from 'zod';
import { type ConversationId, coversConversation } from '../../contracts/conversation/id.js';
import type { EnabledRef, SkillRules } from '../../contracts/policy/skill-rules.js';
import { parentConversationId } from '../../contracts/tasks/task.js';
import { ApprovalAllowances } from './approval-allowances.js';
import { ConversationValueStore } from './conversation-value.js';

/**
 * Which skills a conversation has enabled: config rules (SANDBOT_SKILLS, by conversation prefix, so a
 * whole channel) plus an admin's changes in chat (kept in Redis per conversation). Only names are kept
 * here; whether a skill is approved and unchanged is decided each time it is used.
 */

export { type EnabledRef, SkillRules } from '../../contracts/policy/skill-rules.js';

const Override = z.object({
  enabled: z.array(z.object({ name: z.string(), version: z.string().optional() })),
  disabled: z.array(z.string()),
  by: z.string(),
  at: z.string(),
});
type Override = z.infer<typeof Override>;

/** The effective list: config rules and admin enables, minus admin disables; one version per name. */
export function effectiveSkills(rules: SkillRules, conversation: string, override?: Override): EnabledRef[] {
  const byName = new Map<string, EnabledRef>();
  for (const rule of rules.filter((r) => coversConversation(r.prefix, conversation))) {
    for (const ref of rule.skills) byName.set(ref.name, ref);
  }
  for (const ref of override?.enabled ?? []) byName.set(ref.name, ref);
  for (const name of override?.disabled ?? []) byName.delete(name);
  return [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
}

/** Skills an approval enabled for one hour (request_access), unless an admin disabled them since. */
function withApproved(
  refs: EnabledRef[],
  approved: readonly string[],
  disabled: readonly string[],
): EnabledRef[] {
  const names = new Set(refs.map((r) => r.name));
  const extra = approved.filter((name) => !names.has(name) && !disabled.includes(name));
  if (extra.length === 0) return refs;
  return [...refs, ...extra.map((name): EnabledRef => ({ name }))].sort((a, b) => (a.name < b.name ? -1 : 1));
}

export class SkillEnablement extends ConversationValueStore {
  constructor(
    redis: Redis,
    instance: string,
    private readonly rules: SkillRules,
  ) {
    super(redis, instance, 'skills');
  }

  private async override(conversation: ConversationId): Promise<Override | undefined> {
    const parsed = await this.readJson(conversation, Override);
    return parsed?.success ? parsed.data : undefined;
  }

  /** A sub-agent gets at most its parent's skills (so at most its hosts), whatever rules name it. */
  async enabledFor(conversation: ConversationId): Promise<EnabledRef[]> {
    const override = await this.override(conversation);
    const own = withApproved(
      effectiveSkills(this.rules, conversation, override),
      await new ApprovalAllowances(this.redis, this.instance).skills(conversation),
      override?.disabled ?? [],
    );
    const parent = parentConversationId(conversation);
    if (!parent || own.length === 0) return own;
    const allowed = await this.enabledFor(parent);
    return own.filter((ref) =>
      allowed.some((p) => p.name === ref.name && (!ref.version || !p.version || p.version === ref.version)),
    );
  }

  async enable(conversation: ConversationId, ref: EnabledRef, by: string): Promise<EnabledRef[]> {
    const now = (await this.override(conversation)) ?? { enabled: [], disabled: [], by, at: '' };
    await this.write(conversation, {
      enabled: [...now.enabled.filter((r) => r.name !== ref.name), ref],
      disabled: now.disabled.filter((n) => n !== ref.name),
      by,
      at: new Date().toISOString(),
    });
    return this.enabledFor(conversation);
  }

  async disable(conversation: ConversationId, name: string, by: string): Promise<EnabledRef[]> {
    const now = (await this.override(conversation)) ?? { enabled: [], disabled: [], by, at: '' };
    await this.write(conversation, {
      enabled: now.enabled.filter((r) => r.name !== name),
      disabled: [...new Set([...now.disabled, name])],
      by,
      at: new Date().toISOString(),
    });
    return this.enabledFor(conversation);
  }

  private async write(conversation: ConversationId, override: Override): Promise<void> {
    await this.writeJson(conversation, override);
  }
}
