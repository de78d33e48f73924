import type { PendingSkill } from '../../shared/stores/sandbox-report.js';
import { skillRef } from './manifest.js';
import { approveHint } from './report.js';
import type { SkillStore } from './store.js';

/** Skills in this worker's store waiting for an admin's approval, as the console lists them. */
export async function pendingSkills(store: SkillStore): Promise<PendingSkill[]> {
  const records = await store.list();
  return records
    .filter((r) => r.status === 'pending')
    .map((r) => {
      const critical = r.findings.filter((f) => f.severity === 'critical').length;
      return {
        ref: skillRef(r).slice(0, 200),
        description: r.manifest.description.slice(0, 500),
        addedBy: r.addedBy.slice(0, 200),
        addedAt: r.addedAt,
        critical,
        warnings: r.findings.length - critical,
        // The hint's `code` marks are chat markup; the console shows the command as code itself.
        next: approveHint(r).replaceAll('`', '').slice(0, 1000),
      };
    });
}
