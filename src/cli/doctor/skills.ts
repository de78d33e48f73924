import { resolve } from 'node:path';
import type { Config } from '../../contracts/config/schema.js';
import type { DoctorCheck } from '../../contracts/doctor/check.js';
import { shownDatabaseUrl } from '../../shared/audit/pg-journal.js';
import { DirSkillStore } from '../../worker/skills/dir-store.js';
import { PgSkillStore } from '../../worker/skills/pg-store.js';

export const SKILLS_CHECK = 'Skills';

type Settings = Pick<Config, 'SANDBOT_SKILLS_DIR' | 'SANDBOT_INSTANCE' | 'SANDBOT_DATABASE_URL'>;

/**
 * `sandbot doctor`: where skills are kept and that they can be read there. With SANDBOT_DATABASE_URL in
 * PostgreSQL (its tables made if not), and skills still in SANDBOT_SKILLS_DIR are named as unused.
 */
export async function checkSkillStore(config: Settings): Promise<DoctorCheck> {
  const dir = resolve(config.SANDBOT_SKILLS_DIR);
  const inFolder = async () => (await new DirSkillStore(dir).list()).length;
  const url = config.SANDBOT_DATABASE_URL;
  if (!url) {
    try {
      const n = await inFolder();
      return {
        name: SKILLS_CHECK,
        ok: true,
        detail: `in the folder ${dir} (${n} skill version(s)); several hosts must share this folder, or set SANDBOT_DATABASE_URL`,
      };
    } catch (error) {
      return {
        name: SKILLS_CHECK,
        ok: false,
        detail: `cannot read the skills folder ${dir}: ${(error as Error).message}`,
        fix: 'let this user read SANDBOT_SKILLS_DIR, or point it at a folder it can',
      };
    }
  }
  const store = new PgSkillStore(url, config.SANDBOT_INSTANCE);
  try {
    const { skills, entries } = await store.count();
    const left = await inFolder().catch(() => 0);
    const unused = left
      ? `; the ${left} skill version(s) in ${dir} are not used: add them again with \`sandbot skill add\``
      : '';
    return {
      name: SKILLS_CHECK,
      ok: true,
      detail: `in ${store.root}: ${skills} skill version(s), ${entries} ledger entries; SANDBOT_SKILLS_DIR is not used${unused}`,
    };
  } catch (error) {
    const said = (error as Error).message.replace(/\s+/g, ' ').trim();
    return {
      name: SKILLS_CHECK,
      ok: false,
      detail: said.includes(shownDatabaseUrl(url))
        ? said
        : `cannot use the skills tables in ${store.root}: ${said}`,
      fix: 'make SANDBOT_DATABASE_URL usable (see the audit database check), or unset it to keep skills in SANDBOT_SKILLS_DIR',
    };
  } finally {
    await store.close().catch(() => undefined);
  }
}
