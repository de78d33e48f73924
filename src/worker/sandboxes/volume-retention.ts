import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { SandboxDriver } from '../../../sandbox/host/driver/types.js';
import type { ConversationId } from '../../contracts/conversation/id.js';
import type { Logger } from '../../contracts/log/logger.js';
import { conversationKeys, instanceKeys } from '../../contracts/redis/keys.js';
import { DELETE_IF_HELD } from '../../contracts/redis/scripts.js';
import type { AuditRecorder } from '../../shared/audit/audit-log.js';
import type { ConversationStore } from '../../shared/queue/conversation-store.js';
import type { OutboxLedger } from '../turn/outbox-ledger.js';

const DAY_MS = 86_400_000;
/** How long the sweep holds a conversation's lease while it removes it (no turn starts meanwhile). */
const HOLD_MS = 120_000;
/** Conversations removed per sweep at most: a first sweep over a long backlog does not hog the engine. */
const PER_SWEEP = 100;

/** Last use older than this (ms) is past retention; undefined: keep forever (0 days). */
export function retentionCutoff(now: number, retentionDays: number): number | undefined {
  return retentionDays > 0 ? now - retentionDays * DAY_MS : undefined;
}

/** The conversations to remove: last used before the cutoff, oldest first, at most `limit`. */
export function expiredConversations(
  lastUsed: readonly { conversation: ConversationId; at: number }[],
  cutoff: number | undefined,
  limit = PER_SWEEP,
): ConversationId[] {
  if (cutoff === undefined) return [];
  return lastUsed
    .filter((entry) => entry.at < cutoff)
    .sort((a, b) => a.at - b.at)
    .slice(0, limit)
    .map((entry) => entry.conversation);
}

export interface RetentionDeps {
  driver: Pick<SandboxDriver, 'list' | 'remove'>;
  store: Pick<ConversationStore, 'acquire'>;
  connection: Redis;
  ledger: Pick<OutboxLedger, 'clear'>;
  logger: Logger;
  audit?: AuditRecorder;
}

/**
 * Removes the sandbox and volumes of conversations unused for SANDBOT_VOLUME_RETENTION_DAYS (last use:
 * the `last-used` ZSET the idle stops read). Their audit files stay (SANDBOT_AUDIT_RETENTION_DAYS governs
 * those); a later message starts the conversation afresh. The conversation's lease is held meanwhile,
 * so no turn runs in a sandbox being removed.
 */
export class VolumeRetention {
  constructor(
    private readonly deps: RetentionDeps,
    private readonly options: { instance: string; retentionDays: number; actor: `worker:${string}` },
  ) {}

  async sweep(now: number): Promise<ConversationId[]> {
    const cutoff = retentionCutoff(now, this.options.retentionDays);
    if (cutoff === undefined) return [];
    const key = instanceKeys(this.options.instance).lastUsed;
    await this.noteUntracked(key, now);
    const raw = await this.deps.connection.zrangebyscore(
      key,
      '-inf',
      `(${cutoff}`,
      'WITHSCORES',
      'LIMIT',
      0,
      PER_SWEEP,
    );
    const entries: { conversation: ConversationId; at: number }[] = [];
    for (let i = 0; i < raw.length; i += 2) {
      entries.push({ conversation: raw[i] as ConversationId, at: Number(raw[i + 1]) });
    }
    const removed: ConversationId[] = [];
    for (const conversation of expiredConversations(entries, cutoff)) {
      if (await this.remove(conversation, entries.find((e) => e.conversation === conversation)?.at ?? 0)) {
        removed.push(conversation);
      }
    }
    return removed;
  }

  /** A sandbox with no last use on record (made before it was tracked) is counted from now. */
  private async noteUntracked(key: string, now: number): Promise<void> {
    for (const sandbox of await this.deps.driver.list()) {
      await this.deps.connection.zadd(key, 'NX', now, sandbox.conversation);
    }
  }

  private async remove(conversation: ConversationId, lastUsedAt: number): Promise<boolean> {
    const token = `${this.options.actor}:retention:${randomUUID()}`;
    // Busy (a turn runs, or another worker sweeps it): its last use is about to move, or it is handled.
    if (!(await this.deps.store.acquire(conversation, token, HOLD_MS))) return false;
    try {
      const key = instanceKeys(this.options.instance).lastUsed;
      // A turn that finished between the listing and the lease moved the last use: keep it then.
      const score = await this.deps.connection.zscore(key, conversation);
      if (score === null || Number(score) !== lastUsedAt) return false;
      const existed = await this.deps.driver.remove(conversation, { wipe: true });
      await this.deps.ledger.clear(conversation);
      await this.deps.connection.zrem(key, conversation);
      const days = this.options.retentionDays;
      this.deps.logger.info(
        { audit: 'sandbox.remove', conversation, reason: 'retention', days, existed },
        'unused conversation’s sandbox and volumes removed',
      );
      await this.deps.audit?.record({
        conversation,
        actor: this.options.actor,
        kind: 'sandbox.remove',
        data: {
          reason: 'retention',
          retentionDays: days,
          lastUsedAt: new Date(lastUsedAt).toISOString(),
          existed,
        },
      });
      return true;
    } finally {
      // Let go even when messages came meanwhile: the recovery sweep announces them once the lease is gone.
      const lease = conversationKeys(this.options.instance, conversation).lease;
      await this.deps.connection.eval(DELETE_IF_HELD, 1, lease, token).catch(() => undefined);
    }
  }
}
