import type { Redis } from 'ioredis';
import type { AuditActor } from '../../contracts/audit/events.js';
import type { Config } from '../../contracts/config/schema.js';
import type { ConversationId } from '../../contracts/conversation/id.js';
import type { Logger } from '../../contracts/log/logger.js';
import type { AuditRecorder } from '../../shared/audit/audit-log.js';
import { serveSkillCommands } from '../../shared/queue/skill-commands.js';
import type { SkillCommand } from '../../shared/stores/skill-control.js';
import { SkillEnablement } from '../../shared/stores/skill-enablement.js';
import { skillRef } from './manifest.js';
import { openSkillStore } from './open-store.js';
import { resolveSkills } from './resolve.js';
import type { SkillStore } from './store.js';

/**
 * What chat admins do with skills in a conversation (`skill enable|disable`, `skills`): only approved,
 * unchanged skills can be enabled; each change is recorded in the conversation's audit log.
 */
export class SkillControl {
  constructor(
    private readonly store: SkillStore,
    private readonly enablement: SkillEnablement,
    private readonly audit?: AuditRecorder,
  ) {}

  /** Carries out a parsed command; the answer in words. */
  async run(conversation: ConversationId, command: SkillCommand, by: AuditActor): Promise<string> {
    switch (command.action) {
      case 'invalid':
        return command.message;
      case 'list':
        return this.describe(conversation);
      case 'enable':
        return this.enable(conversation, command, by);
      case 'disable':
        return this.disable(conversation, command.name, by);
    }
  }

  async enable(
    conversation: ConversationId,
    ref: { name: string; version?: string },
    by: AuditActor,
  ): Promise<string> {
    const { active, refused } = await resolveSkills(this.store, [ref]);
    const skill = active[0];
    if (!skill) {
      const why = refused[0];
      return `Skill ${why?.skill ?? ref.name} cannot be enabled: ${why?.reason ?? 'unknown skill'}.`;
    }
    const enabled = await this.enablement.enable(conversation, ref, by);
    await this.recordChange(conversation, by, { enabled: skillRef(skill.record) }, enabled);
    const { manifest, approval } = skill.record;
    const tools = manifest.tools.map((t) => t.name).join(', ') || 'no tools';
    return `Skill ${skillRef(skill.record)} is enabled here from the next turn (${tools}; network: ${approval.hosts.join(', ') || 'none'}).`;
  }

  async disable(conversation: ConversationId, name: string, by: AuditActor): Promise<string> {
    const enabled = await this.enablement.disable(conversation, name, by);
    await this.recordChange(conversation, by, { disabled: name }, enabled);
    return `Skill ${name} is disabled here: its tools go from the next turn, and its hosts are refused at once (also to its tool processes still running).`;
  }

  async describe(conversation: ConversationId): Promise<string> {
    const refs = await this.enablement.enabledFor(conversation);
    const { active, refused } = await resolveSkills(this.store, refs);
    const lines = [
      ...active.map(
        ({ record }) =>
          `✅ ${skillRef(record)}: ${record.manifest.description} (tools: ${record.manifest.tools.map((t) => t.name).join(', ') || 'none'}; network: ${record.approval.hosts.join(', ') || 'none'})`,
      ),
      ...refused.map((r) => `⛔ ${r.skill}: enabled but refused — ${r.reason}`),
    ];
    const enabledNames = new Set(refs.map((r) => r.name));
    const available = (await this.store.list())
      .filter((r) => r.status === 'approved' && !enabledNames.has(r.name))
      .map((r) => skillRef(r));
    const head = lines.length
      ? `Skills in this conversation:\n${lines.join('\n')}`
      : 'No skills are enabled in this conversation.';
    return available.length ? `${head}\nApproved, not enabled: ${[...new Set(available)].join(', ')}.` : head;
  }

  private async recordChange(
    conversation: ConversationId,
    by: AuditActor,
    change: Record<string, string>,
    enabled: readonly { name: string; version?: string }[],
  ): Promise<void> {
    await this.audit?.record({
      conversation,
      actor: by,
      kind: 'policy.change',
      data: {
        policy: 'skills',
        ...change,
        skills: enabled.map((r) => (r.version ? `${r.name}@${r.version}` : r.name)),
      },
    });
  }
}

/** Serves the gateways' chat skill commands (see skill-commands.ts) from this worker's skills store. */
export function serveChatSkillCommands(
  config: Pick<Config, 'SANDBOT_INSTANCE' | 'SANDBOT_SKILLS_DIR' | 'SANDBOT_DATABASE_URL' | 'SANDBOT_SKILLS'>,
  deps: { redis: Redis; audit?: AuditRecorder; logger: Logger },
): { stop(): Promise<void> } {
  const control = new SkillControl(
    openSkillStore(config),
    new SkillEnablement(deps.redis, config.SANDBOT_INSTANCE, config.SANDBOT_SKILLS),
    deps.audit,
  );
  return serveSkillCommands(
    deps.redis,
    config.SANDBOT_INSTANCE,
    (request) => control.run(request.conversation, request.command, request.by),
    deps.logger,
  );
}
