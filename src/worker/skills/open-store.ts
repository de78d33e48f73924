import type { Config } from '../../contracts/config/schema.js';
import { DirSkillStore } from './dir-store.js';
import { PgSkillStore } from './pg-store.js';
import type { SkillStore } from './store.js';

export type SkillStoreSettings = Pick<
  Config,
  'SANDBOT_SKILLS_DIR' | 'SANDBOT_INSTANCE' | 'SANDBOT_DATABASE_URL'
>;

/** One database store per URL and instance in a process: the worker's parts share its pool. */
const opened = new Map<string, PgSkillStore>();

/**
 * Where this process keeps and reads skills: PostgreSQL when SANDBOT_DATABASE_URL is set (every host
 * and the CLI see the same skills, approvals, reports and ledger; SANDBOT_SKILLS_DIR is not used), else
 * the folder SANDBOT_SKILLS_DIR. Every caller opens the store here.
 */
export function openSkillStore(settings: SkillStoreSettings): SkillStore {
  const url = settings.SANDBOT_DATABASE_URL;
  if (!url) return new DirSkillStore(settings.SANDBOT_SKILLS_DIR);
  const key = `${url}\0${settings.SANDBOT_INSTANCE}`;
  let store = opened.get(key);
  if (!store || store.closed) {
    store = new PgSkillStore(url, settings.SANDBOT_INSTANCE);
    opened.set(key, store);
  }
  return store;
}

/** Ends the pools of the database stores this process opened (its last step, or a test's). */
export async function closeSkillStores(): Promise<void> {
  const stores = [...opened.values()];
  opened.clear();
  await Promise.all(stores.map((s) => s.close().catch(() => undefined)));
}
