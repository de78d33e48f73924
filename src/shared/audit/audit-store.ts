import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { AuditBody, type AuditEvent } from '../../contracts/audit/events.js';
import { type ConversationId, conversationKey } from '../../contracts/conversation/id.js';
import { auditKeys } from '../../contracts/redis/keys.js';
import { AUDIT_COMMIT, AUDIT_RELEASE, DELETE_IF_HELD } from '../../contracts/redis/scripts.js';
import { GENESIS_HASH, seal } from './chain.js';
import type { AuditStorage } from './storage.js';

const LOCK_MS = 30_000;
const BATCH = 200;

type Script = (...args: (string | number)[]) => Promise<unknown>;
type Scripted = Redis & { sbAuditCommit: Script; sbAuditRelease: Script; sbAuditUnlock: Script };

/**
 * Orders and writes audit events. Any process pushes events onto the conversation's Redis list: Redis
 * gives them one order across all processes. The process holding the conversation's write lock takes
 * them off in that order, gives each the next seq and the previous hash (read from the storage's own
 * last event, the one place the chain lives: a file, or PostgreSQL), appends them, then in one step
 * drops them from the list and adds them to the live stream. A writer that dies is succeeded by the next push or by the sweep; lines
 * it had already appended are recognised by event id and not written twice.
 */
export class AuditStore {
  private readonly redis: Scripted;

  constructor(
    redis: Redis,
    private readonly instance: string,
    private readonly journal: AuditStorage,
    private readonly streamMax: number,
  ) {
    redis.defineCommand('sbAuditCommit', { numberOfKeys: 4, lua: AUDIT_COMMIT });
    redis.defineCommand('sbAuditRelease', { numberOfKeys: 3, lua: AUDIT_RELEASE });
    redis.defineCommand('sbAuditUnlock', { numberOfKeys: 1, lua: DELETE_IF_HELD });
    this.redis = redis as Scripted;
  }

  /** Queues an event. Sent at once, so pushes from one process keep their call order. */
  push(body: AuditBody): Promise<unknown> {
    const k = auditKeys(this.instance, body.conversation);
    return this.redis.multi().rpush(k.pending, JSON.stringify(body)).sadd(k.dirty, body.conversation).exec();
  }

  /** Writes what is queued for a conversation, unless another process is doing so (it will see ours). */
  async flush(conversation: ConversationId): Promise<AuditEvent[]> {
    const k = auditKeys(this.instance, conversation);
    const token = randomUUID();
    if ((await this.redis.set(k.lock, token, 'PX', LOCK_MS, 'NX')) !== 'OK') return [];
    const written: AuditEvent[] = [];
    try {
      for (;;) {
        const raw = await this.redis.lrange(k.pending, 0, BATCH - 1);
        if (raw.length === 0) {
          const released = Number(
            await this.redis.sbAuditRelease(k.lock, k.pending, k.dirty, token, conversation),
          );
          if (released === 0) continue;
          return written;
        }
        const events = await this.sealBatch(conversation, raw);
        await this.journal.append(conversation, events);
        const last = events.at(-1);
        const committed = await this.redis.sbAuditCommit(
          k.lock,
          k.pending,
          k.stream,
          k.head,
          token,
          raw.length,
          this.streamMax,
          last?.seq ?? 0,
          last?.hash ?? '',
          conversation,
          LOCK_MS,
          ...events.flatMap((e) => [e.kind, JSON.stringify(e)]),
        );
        written.push(...events);
        if (Number(committed) !== 1) return written; // lock lost: its new holder carries on
      }
    } catch (error) {
      await this.redis.sbAuditUnlock(k.lock, token).catch(() => undefined);
      throw error;
    }
  }

  /** Seals queued bodies after the file's last event, skipping any a dead writer already appended. */
  private async sealBatch(conversation: ConversationId, raw: string[]): Promise<AuditEvent[]> {
    const head = await this.journal.head(conversation);
    const bodies = raw.map((line) => {
      try {
        const parsed = AuditBody.safeParse(JSON.parse(line));
        return parsed.success ? parsed.data : undefined;
      } catch {
        return undefined;
      }
    });
    const done = head ? bodies.findIndex((b) => b?.id === head.id) : -1;
    let seq = head?.seq ?? 0;
    let prevHash = head?.hash ?? GENESIS_HASH;
    const events: AuditEvent[] = [];
    for (const body of bodies.slice(done + 1)) {
      if (!body) continue; // cannot happen for pushes of ours; never let it block the queue
      const event = seal(body, ++seq, prevHash);
      prevHash = event.hash;
      events.push(event);
    }
    return events;
  }

  async dirtyConversations(): Promise<ConversationId[]> {
    return (await this.redis.smembers(auditKeys(this.instance).dirty)) as ConversationId[];
  }

  /** The last event written, as Redis remembers it (undefined when it does not). */
  async head(conversation: ConversationId): Promise<{ seq: number; hash: string } | undefined> {
    const [seq, hash] = await this.redis.hmget(auditKeys(this.instance, conversation).head, 'seq', 'hash');
    return seq && hash ? { seq: Number(seq), hash } : undefined;
  }

  /** Events queued but not yet in the file (a writer that died may hold its lock a while), oldest first. */
  async queued(conversation: ConversationId, max = 2000): Promise<AuditBody[]> {
    const raw = await this.redis.lrange(auditKeys(this.instance, conversation).pending, 0, max - 1);
    return raw.flatMap((line) => {
      try {
        const parsed = AuditBody.safeParse(JSON.parse(line));
        return parsed.success ? [parsed.data] : [];
      } catch {
        return [];
      }
    });
  }

  async pendingCount(conversation: ConversationId): Promise<number> {
    return this.redis.llen(auditKeys(this.instance, conversation).pending);
  }

  /**
   * Deletes a conversation's file when `stillExpired` confirms it under the write lock and nothing is
   * queued; the chain then starts afresh. False when it was busy.
   */
  async expire(conversation: ConversationId, stillExpired: () => Promise<boolean>): Promise<boolean> {
    const k = auditKeys(this.instance, conversation);
    const token = randomUUID();
    if ((await this.redis.set(k.lock, token, 'PX', LOCK_MS, 'NX')) !== 'OK') return false;
    try {
      if ((await this.redis.llen(k.pending)) > 0 || !(await stillExpired())) return false;
      await this.journal.remove(conversationKey(conversation));
      await this.redis.del(k.head);
      return true;
    } finally {
      await this.redis.sbAuditUnlock(k.lock, token);
    }
  }
}
