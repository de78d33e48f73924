import { stat } from 'node:fs/promises';
import { ConversationId, conversationKey } from '../../contracts/conversation/id.js';
import type { AuditStore } from './audit-store.js';
import { MAX_EVENT_BYTES } from './bound.js';
import type { AuditJournal } from './journal.js';

/**
 * Removes conversation files not written to for longer than the retention. A file goes whole, under
 * its write lock and only when nothing is queued for it, so the chain of a conversation that comes
 * back starts afresh at seq 1 instead of continuing a chain whose beginning is gone.
 */
export async function expireOldFiles(
  journal: AuditJournal,
  store: AuditStore,
  maxAgeMs: number,
): Promise<number> {
  const cutoff = () => Date.now() - maxAgeMs;
  let removed = 0;
  for (const file of await journal.list()) {
    if (file.mtimeMs >= cutoff()) continue;
    const conversation = await conversationOf(journal, file.key);
    if (!conversation) continue; // not ours to judge: `sandbot audit verify` names it
    const stillExpired = async () => {
      const info = await stat(file.path).catch(() => undefined);
      return info !== undefined && info.mtimeMs < cutoff();
    };
    if (await store.expire(conversation, stillExpired)) removed += 1;
  }
  return removed;
}

/** The conversation a file belongs to, from its first line. */
async function conversationOf(journal: AuditJournal, key: string): Promise<ConversationId | undefined> {
  const text = await journal.readHead(key, MAX_EVENT_BYTES + 1);
  try {
    const parsed = ConversationId.safeParse(
      (JSON.parse(text.split('\n')[0] ?? '') as { conversation?: unknown }).conversation,
    );
    return parsed.success && conversationKey(parsed.data) === key ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}
