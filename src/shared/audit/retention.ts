import type { AuditStore } from './audit-store.js';
import type { AuditStorage } from './storage.js';

/**
 * Removes conversations not written to for longer than the retention: a file, or its rows in
 * PostgreSQL. A conversation goes whole, under its write lock and only when nothing is queued for it,
 * so the chain of a conversation that comes back starts afresh at seq 1 instead of continuing a chain
 * whose beginning is gone.
 */
export async function expireOldFiles(
  journal: AuditStorage,
  store: AuditStore,
  maxAgeMs: number,
): Promise<number> {
  const cutoff = () => Date.now() - maxAgeMs;
  let removed = 0;
  for (const file of await journal.list()) {
    if (file.mtimeMs >= cutoff()) continue;
    const conversation = await journal.conversationOfKey(file.key);
    if (!conversation) continue; // not ours to judge: `sandbot audit verify` names it
    const stillExpired = async () => {
      const written = await journal.lastWritten(file.key);
      return written !== undefined && written < cutoff();
    };
    if (await store.expire(conversation, stillExpired)) removed += 1;
  }
  return removed;
}
