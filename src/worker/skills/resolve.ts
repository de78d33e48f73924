import type { EnabledRef } from '../../shared/stores/skill-enablement.js';
import type { SkillFile } from './hashing.js';
import { skillRef } from './manifest.js';
import { rescanIfStale } from './rescan.js';
import type { SkillRecord, SkillStore } from './store.js';

/** An enabled skill that may be used now: approved, and its files on disk hash to the approval. */
export interface ActiveSkill {
  record: SkillRecord & { approval: NonNullable<SkillRecord['approval']> };
  files: SkillFile[];
}

export interface SkillRefusal {
  skill: string;
  reason: string;
}

/**
 * Turns enabled names into usable skills, re-hashing every file against its approval each time (a
 * skill whose files changed is refused until it is rescanned and approved again). A skill whose tool
 * names clash with an earlier one's is refused too: tools must not shadow each other.
 */
export async function resolveSkills(
  store: SkillStore,
  refs: readonly EnabledRef[],
): Promise<{ active: ActiveSkill[]; refused: SkillRefusal[] }> {
  const active: ActiveSkill[] = [];
  const refused: SkillRefusal[] = [];
  const toolOwners = new Map<string, string>();
  for (const ref of refs) {
    const asked = ref.version ? `${ref.name}@${ref.version}` : ref.name;
    let record: SkillRecord | undefined;
    try {
      const picked = await store.pick(ref.name, ref.version);
      record = picked && (await rescanIfStale(store, picked));
    } catch (error) {
      refused.push({ skill: asked, reason: (error as Error).message });
      continue;
    }
    if (!record) {
      refused.push({ skill: asked, reason: 'no such skill has been added (`sandbot skill add`)' });
      continue;
    }
    const name = skillRef(record);
    if (record.status !== 'approved' || !record.approval) {
      const reason = record.rescan?.newCritical
        ? `rescanned under new scanner rules, it has ${record.rescan.newCritical} new critical finding(s): its approval is withdrawn until an admin reviews them (\`sandbot skill show ${name}\`) and approves it again`
        : `it is not approved yet (\`sandbot skill approve ${name}\`)`;
      refused.push({ skill: name, reason });
      continue;
    }
    const verification = await store.verify(record);
    if (!verification.ok) {
      refused.push({
        skill: name,
        reason: `${verification.reason}; it is refused until an admin rescans it (\`sandbot skill add\`) and approves it again`,
      });
      continue;
    }
    const clash = record.manifest.tools.find((t) => toolOwners.has(t.name));
    if (clash) {
      refused.push({
        skill: name,
        reason: `its tool ${clash.name} clashes with skill ${toolOwners.get(clash.name)}'s`,
      });
      continue;
    }
    for (const tool of record.manifest.tools) toolOwners.set(tool.name, name);
    active.push({ record: record as ActiveSkill['record'], files: verification.files });
  }
  return { active, refused };
}
