import type Dockerode from 'dockerode';
import type { Redis } from 'ioredis';
import type { SkillMount } from '../../../sandbox/host/driver/skill-mount.js';
import { SkillVolumes } from '../../../sandbox/host/driver/skill-volumes.js';
import type { AuditActor } from '../../contracts/audit/events.js';
import type { Config } from '../../contracts/config/schema.js';
import type { ConversationId } from '../../contracts/conversation/id.js';
import type { Logger } from '../../contracts/log/logger.js';
import type { Grant } from '../../contracts/policy/network-policy.js';
import { SKILLS_ROOT, type SkillAccess, type SkillToolSpec } from '../../contracts/protocol/skill-tools.js';
import type { AuditRecorder } from '../../shared/audit/audit-log.js';
import { SkillEnablement } from '../../shared/stores/skill-enablement.js';
import { skillRef } from './manifest.js';
import { openSkillStore } from './open-store.js';
import { type ActiveSkill, resolveSkills, type SkillRefusal } from './resolve.js';
import type { SkillStore } from './store.js';

/** What one turn gets from its conversation's enabled skills. */
export interface TurnSkills {
  /** Volumes to mount read-only at /skills/<name> (empty: none; the sandbox is recreated to match). */
  mounts: SkillMount[];
  /** Tools added to the model request and the runtime's `turn` message. */
  tools: SkillToolSpec[];
  /** Tool name → "skill@version", for the audit of each call. */
  toolSkills: Record<string, string>;
  /** Names of the loaded skills with approved hosts: each gets a proxy credential of its own. */
  networked: string[];
  /** Those credentials, once the sandbox's network is known (turn-open.ts): sent with the turn. */
  access?: SkillAccess[];
  /** The system prompt with the skills' instructions appended. */
  systemPrompt(base: string): string;
  /** Skills that were enabled but refused, in words for the user (undefined: none). */
  notice?: string;
  /** Once the sandbox is open: checks what it sees under /skills; throws (after resetting it) on a mismatch. */
  verifyMounted(): Promise<void>;
}

export interface WorkerSkillsDeps {
  store: SkillStore;
  enablement: SkillEnablement;
  volumes: SkillVolumes;
  audit?: AuditRecorder;
  actor: () => AuditActor;
  logger: Logger;
  /** Upper bounds of one tool call, whatever a skill asks. */
  limits: { toolTimeoutMs: number; memoryMb: number };
}

/** How long the proxy may rely on one lookup of a skill's hosts (a disable takes effect within it). */
const HOSTS_CACHE_MS = 1000;

const NONE: Omit<TurnSkills, 'verifyMounted'> = {
  mounts: [],
  tools: [],
  toolSkills: {},
  networked: [],
  systemPrompt: (base) => base,
};

/**
 * The worker's side of skills: before each turn, re-verifies the enabled skills against their
 * approvals, fills their volumes, and builds the tools and instructions the turn offers; for the
 * egress proxy, each enabled skill's approved hosts (only while it is enabled and unchanged), which
 * only that skill's own credential reaches.
 */
export class WorkerSkills {
  private readonly hostsCache = new Map<string, { at: number; hosts: Grant[] | undefined }>();

  constructor(private readonly deps: WorkerSkillsDeps) {}

  async forTurn(conversation: ConversationId, turnId: string): Promise<TurnSkills> {
    const refs = await this.deps.enablement.enabledFor(conversation);
    if (refs.length === 0) return { ...NONE, verifyMounted: async () => undefined };
    const { active, refused } = await resolveSkills(this.deps.store, refs);
    const mounted: { skill: ActiveSkill; mount: SkillMount }[] = [];
    for (const skill of active) {
      try {
        mounted.push({ skill, mount: await this.deps.volumes.ensure(contentOf(skill)) });
      } catch (error) {
        refused.push({
          skill: skillRef(skill.record),
          reason: `its files could not be mounted: ${(error as Error).message}`,
        });
      }
    }
    for (const r of refused)
      this.record(conversation, turnId, { action: 'refused', skill: r.skill, reason: r.reason });
    for (const { skill, mount } of mounted) {
      this.record(conversation, turnId, {
        action: 'loaded',
        skill: skillRef(skill.record),
        hash: skill.record.approval.hash,
        volume: mount.volume,
        tools: skill.record.manifest.tools.map((t) => t.name),
        hosts: skill.record.approval.hosts,
      });
    }
    if (refused.length) this.deps.logger.warn({ conversation, refused }, 'enabled skills refused');
    const tools = mounted.flatMap(({ skill }) => this.toolsOf(skill));
    return {
      mounts: mounted.map((m) => m.mount),
      tools,
      toolSkills: Object.fromEntries(tools.map((t) => [t.name, t.skill])),
      networked: mounted.filter((m) => m.skill.record.approval.hosts.length).map((m) => m.skill.record.name),
      systemPrompt: (base) =>
        withInstructions(
          base,
          mounted.map((m) => m.skill),
        ),
      ...(refused.length ? { notice: refusalNotice(refused) } : {}),
      verifyMounted: () => this.verifyMounted(conversation, turnId, mounted),
    };
  }

  /** Hosts approved for the conversation's enabled, unchanged skills, all together. */
  async grantsFor(conversation: ConversationId): Promise<Grant[]> {
    const hosts = await this.hostsBySkill(conversation);
    return [...new Set([...hosts.values()].flat())];
  }

  /**
   * One skill's approved hosts while it is enabled (for a sub-agent: in its own conversation, and so in
   * its parent's) and approved and unchanged; undefined otherwise. Asked by the egress proxy per
   * connection of that skill's credential, so a disable or a withdrawn approval cuts it off at once;
   * kept for at most HOSTS_CACHE_MS (re-hashing the skill's files on every connection would cost).
   */
  async hostsOf(conversation: ConversationId, skill: string): Promise<Grant[] | undefined> {
    const key = `${conversation}\n${skill}`;
    const cached = this.hostsCache.get(key);
    if (cached && Date.now() - cached.at < HOSTS_CACHE_MS) return cached.hosts;
    const hosts = (await this.hostsBySkill(conversation)).get(skill);
    if (this.hostsCache.size > 1000) this.hostsCache.clear();
    this.hostsCache.set(key, { at: Date.now(), hosts });
    return hosts;
  }

  private async hostsBySkill(conversation: ConversationId): Promise<Map<string, Grant[]>> {
    const refs = await this.deps.enablement.enabledFor(conversation);
    if (refs.length === 0) return new Map();
    const { active } = await resolveSkills(this.deps.store, refs);
    return new Map(active.map((a) => [a.record.name, a.record.approval.hosts]));
  }

  private async verifyMounted(
    conversation: ConversationId,
    turnId: string,
    mounted: { skill: ActiveSkill; mount: SkillMount }[],
  ): Promise<void> {
    const problems = await this.deps.volumes.verifyMounted(
      conversation,
      mounted.map(({ skill }) => ({ name: skill.record.name, files: skill.record.files })),
    );
    if (problems.length === 0) return;
    this.record(conversation, turnId, {
      action: 'mount_mismatch',
      skill: problems.join('; ').slice(0, 200),
      problems,
    });
    await this.deps.volumes.discard(
      conversation,
      mounted.map((m) => m.mount.volume),
    );
    throw new Error(
      `the skill files mounted in it do not match their approval (${problems.join('; ')}); it was reset, so send your message again`,
    );
  }

  private toolsOf(skill: ActiveSkill): SkillToolSpec[] {
    const { manifest } = skill.record;
    const { limits } = this.deps;
    return manifest.tools.map((tool) => ({
      name: tool.name,
      skill: skillRef(manifest),
      description: tool.description,
      input: tool.input,
      run: `${SKILLS_ROOT}/${manifest.name}/${tool.run}`,
      ...(tool.interpreter ? { interpreter: tool.interpreter } : {}),
      timeoutMs: Math.min(manifest.permissions.timeoutSeconds * 1000, limits.toolTimeoutMs),
      memoryMb: Math.min(manifest.permissions.memoryMb, limits.memoryMb),
    }));
  }

  private record(
    conversation: ConversationId,
    turnId: string,
    data: { action: string; skill: string } & Record<string, unknown>,
  ): void {
    void this.deps.audit?.record({ conversation, turnId, actor: this.deps.actor(), kind: 'skill', data });
  }
}

function contentOf(skill: ActiveSkill) {
  const { record } = skill;
  return {
    name: record.name,
    version: record.version,
    hash: record.approval.hash,
    approvedAt: record.approval.at,
    files: skill.files,
    executables: new Set(record.manifest.tools.map((t) => t.run)),
  };
}

export function withInstructions(base: string, skills: readonly ActiveSkill[]): string {
  if (skills.length === 0) return base;
  const sections = skills.map(({ record: { manifest } }) => {
    const tools = manifest.tools.map((t) => `- ${t.name}: ${t.description}`).join('\n');
    return [
      `### Skill ${manifest.name} ${manifest.version}: ${manifest.description}`,
      `Its files are read-only in ${SKILLS_ROOT}/${manifest.name}.`,
      manifest.instructions.trim(),
      tools ? `Its tools:\n${tools}` : '',
    ]
      .filter(Boolean)
      .join('\n');
  });
  return `${base}\n\nSkills an admin has vetted and enabled for this conversation:\n\n${sections.join('\n\n')}`;
}

export function refusalNotice(refused: readonly SkillRefusal[]): string {
  return `Not loaded: ${refused.map((r) => `skill ${r.skill} (${r.reason})`).join('; ')}.`;
}

/** The worker's skills, wired from config. */
export function workerSkills(
  config: Pick<
    Config,
    | 'SANDBOT_INSTANCE'
    | 'SANDBOT_SKILLS_DIR'
    | 'SANDBOT_DATABASE_URL'
    | 'SANDBOT_SKILLS'
    | 'SANDBOX_IMAGE'
    | 'SANDBOX_TOOL_TIMEOUT_SECONDS'
    | 'SANDBOX_MEMORY_MB'
  >,
  deps: { docker: Dockerode; redis: Redis; audit?: AuditRecorder; actor: () => AuditActor; logger: Logger },
): WorkerSkills {
  return new WorkerSkills({
    store: openSkillStore(config),
    enablement: new SkillEnablement(deps.redis, config.SANDBOT_INSTANCE, config.SANDBOT_SKILLS),
    volumes: new SkillVolumes(deps.docker, config.SANDBOT_INSTANCE, config.SANDBOX_IMAGE, deps.logger),
    audit: deps.audit,
    actor: deps.actor,
    logger: deps.logger,
    limits: { toolTimeoutMs: config.SANDBOX_TOOL_TIMEOUT_SECONDS * 1000, memoryMb: config.SANDBOX_MEMORY_MB },
  });
}
