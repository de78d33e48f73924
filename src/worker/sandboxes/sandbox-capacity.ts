import type { Redis } from 'ioredis';
import type { SandboxDriver } from '../../../sandbox/host/driver/types.js';
import { type ConversationId, coversConversation } from '../../contracts/conversation/id.js';
import type { Logger } from '../../contracts/log/logger.js';
import type { OutboundEvent } from '../../contracts/protocol/outbound.js';
import { instanceKeys } from '../../contracts/redis/keys.js';
import type { AuditRecorder } from '../../shared/audit/audit-log.js';
import type { ConversationStore, Turn } from '../../shared/queue/conversation-store.js';
import type { OutboxLedger } from '../turn/outbox-ledger.js';
import { progressEvent } from '../turn/turn-events.js';

export interface CapacityDeps {
  driver: SandboxDriver;
  store: ConversationStore;
  connection: Redis;
  ledger: OutboxLedger;
  logger: Logger;
  publish: (event: OutboundEvent) => Promise<void>;
  audit?: AuditRecorder;
  /** The warm pool: its sandboxes hold slots too, and give them up first. */
  pool?: { count(): Promise<number>; shrink(count: number): Promise<number> };
}

export interface CapacityOptions {
  instance: string;
  idleSeconds: number;
  /** Running sandboxes a worker keeps at most. */
  maxLive: number;
  /** Conversation-id prefixes wiped rather than stopped when idle. */
  ephemeral: string[];
}

/** How many sandboxes run on this worker's engine: idle stops, ephemeral wipes, and the live cap. */
export class SandboxCapacity {
  constructor(
    private readonly deps: CapacityDeps,
    private readonly options: CapacityOptions,
  ) {}

  /** Stops sandboxes unused for the idle timeout; they start again on the next message. */
  async stopIdle(now: number): Promise<void> {
    const key = instanceKeys(this.options.instance).lastUsed;
    const cutoff = now - this.options.idleSeconds * 1000;
    for (const sandbox of await this.deps.driver.list()) {
      if (sandbox.state !== 'running') continue;
      const score = await this.deps.connection.zscore(key, sandbox.conversation);
      if (score === null) {
        await this.deps.connection.zadd(key, Date.now(), sandbox.conversation);
        continue;
      }
      if (Number(score) > cutoff || (await this.deps.store.leaseHolder(sandbox.conversation))) continue;
      await this.retire(sandbox.conversation);
    }
  }

  /** Stops an unused sandbox; an ephemeral conversation's is removed with its workspace instead. */
  private async retire(conversation: ConversationId): Promise<void> {
    if (this.options.ephemeral.some((prefix) => coversConversation(prefix, conversation))) {
      await this.deps.driver.remove(conversation, { wipe: true });
      await this.deps.ledger.clear(conversation);
      this.deps.logger.info({ audit: 'sandbox.wipe', conversation }, 'ephemeral sandbox wiped');
      return;
    }
    await this.deps.driver.stop(conversation);
    this.deps.logger.info({ audit: 'sandbox.stop', conversation }, 'idle sandbox stopped');
  }

  /** Docker's state of the conversation's sandbox; undefined when there is none or the engine failed. */
  stateOf(conversation: ConversationId): Promise<string | undefined> {
    return this.deps.driver.state(conversation).catch(() => undefined);
  }

  /**
   * Makes room under SANDBOX_MAX_LIVE for this turn's sandbox: stops the least recently used sandboxes
   * no turn is using (the warm pool's first); when every one is busy, the turn waits (told once).
   * `ownState`: the sandbox's state, when already asked for.
   */
  async ensureRoom(
    turn: Turn,
    abandon: AbortSignal,
    actor: `worker:${string}`,
    ownState = this.stateOf(turn.conversation),
  ): Promise<void> {
    // Its own sandbox is running: this turn adds none (the warm case; one inspect, not a listing).
    if ((await ownState) === 'running') return;
    const max = this.options.maxLive;
    // Well below the cap (the usual case for a new conversation): one count, no listing of who is who.
    const census = await this.deps.driver.countRunning();
    if (census.sandboxes + census.pooled < max) return;
    const lastUsed = instanceKeys(this.options.instance).lastUsed;
    for (let told = false; !abandon.aborted; ) {
      const [sandboxes, poolCount] = await Promise.all([this.deps.driver.list(), this.deps.pool?.count()]);
      const running = sandboxes.filter((s) => s.state === 'running');
      let pooled = poolCount ?? 0;
      if (running.length + pooled < max || running.some((s) => s.conversation === turn.conversation)) return;
      // Pooled sandboxes are there to save time, not to hold slots: they make room first.
      if (pooled > 0) pooled -= (await this.deps.pool?.shrink(running.length + pooled - max + 1)) ?? 0;
      if (running.length + pooled < max) return;
      const idle: { conversation: ConversationId; used: number }[] = [];
      for (const s of running) {
        if (await this.deps.store.leaseHolder(s.conversation)) continue;
        idle.push({
          conversation: s.conversation,
          used: Number((await this.deps.connection.zscore(lastUsed, s.conversation)) ?? 0),
        });
      }
      idle.sort((a, b) => a.used - b.used);
      const excess = running.length + pooled - max + 1;
      for (const s of idle.slice(0, excess)) await this.retire(s.conversation);
      if (idle.length >= excess) return;
      if (!told) {
        told = true;
        this.deps.logger.warn(
          { audit: 'limit.hit', limit: 'live_sandboxes', max, conversation: turn.conversation },
          'sandbox cap reached',
        );
        await this.deps.audit?.record({
          conversation: turn.conversation,
          turnId: turn.turnId,
          actor,
          kind: 'limit.hit',
          data: { limit: 'live_sandboxes', max },
        });
        await this.deps.publish(
          progressEvent(
            turn,
            'waiting',
            `All ${max} sandboxes are busy; your message waits for one to free up.`,
          ),
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
}
