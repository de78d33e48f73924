import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { DockerSandboxDriver } from '../../../sandbox/host/driver/docker-driver.js';
import type { PooledSandbox, PoolSource } from '../../../sandbox/host/driver/docker-pool.js';
import type { ConversationId } from '../../contracts/conversation/id.js';
import type { Logger } from '../../contracts/log/logger.js';
import { instanceKeys } from '../../contracts/redis/keys.js';
import type { WorkspaceBaselines } from '../audit/workspace-baselines.js';
import { CANARY_PATH, type Canary, canaryFileContent, newCanaryToken } from '../turn/canary.js';

export interface WarmPoolDeps {
  driver: Pick<DockerSandboxDriver, 'createPooled' | 'listPool' | 'removePooled' | 'list' | 'starting'>;
  redis: Redis;
  canary: Pick<Canary, 'adopt'>;
  baselines?: Pick<WorkspaceBaselines, 'seed'>;
  logger: Logger;
}

export interface WarmPoolOptions {
  instance: string;
  /** Sandboxes kept ready (SANDBOX_WARM_POOL). */
  size: number;
  /** SANDBOX_MAX_LIVE: the pool fills only while running sandboxes and pooled ones stay below it. */
  maxLive: number;
  /** How often the pool checks it is full (and its owner mark stays fresh). */
  refillMs?: number;
  /** How long after a claim the pool starts the replacement (not while that conversation's first turn runs). */
  refillDelayMs?: number;
}

/** A pool whose worker stopped marking itself alive this long ago is dead: its sandboxes are removed. */
const OWNER_TTL_SECONDS = 30;
const ORPHAN_CHECK_MS = 60_000;

/**
 * The worker's warm pool: SANDBOX_WARM_POOL sandboxes started ahead, each with its canary planted and
 * its workspace snapshot taken, so a new conversation's first turn waits for none of that. A claimed
 * sandbox is the conversation's for good (never back to the pool); the pool refills in the background.
 * Pooled sandboxes count toward SANDBOX_MAX_LIVE and give way first when it is reached. On stop the
 * pool removes what is left; a pool that died without stopping is cleaned up by the next worker of the
 * instance to start (its owner mark in Redis expires).
 */
export class WarmPool implements PoolSource {
  readonly owner = `pool-${randomBytes(4).toString('hex')}`;
  private readonly ready: PooledSandbox[] = [];
  /** Canary tokens of the pool's sandboxes, until claimed or removed. */
  private readonly tokens = new Map<string, string>();
  private filling?: Promise<void>;
  private stopped = false;
  private timer?: NodeJS.Timeout;
  private refillTimer?: NodeJS.Timeout;
  private orphansCheckedAt = 0;
  private lastTakeAt = 0;

  constructor(
    private readonly deps: WarmPoolDeps,
    private readonly options: WarmPoolOptions,
  ) {}

  private ownerKey(owner: string): string {
    return instanceKeys(this.options.instance).poolOwner(owner);
  }

  /** Marks this pool alive, removes dead pools' leftovers, and starts filling (in the background). */
  async start(): Promise<void> {
    await this.markAlive();
    this.timer = setInterval(() => void this.tick(), this.options.refillMs ?? 5000);
    this.timer.unref();
    await this.tick();
  }

  /** Ready sandboxes of this pool. */
  size(): number {
    return this.ready.length;
  }

  take(): PooledSandbox | undefined {
    const sandbox = this.ready.shift();
    if (!sandbox) return undefined;
    this.lastTakeAt = Date.now();
    void this.markAlive().catch(() => undefined);
    // Only a claim frees a slot for a new one (an empty pool refills at the next tick, not while a
    // conversation's own sandbox is being created); and only once claims have paused for the delay
    // (the last claiming conversation's first turn under way, a burst over): starting a sandbox takes
    // the engine and the CPU for a while, which a burst's turns need.
    clearTimeout(this.refillTimer);
    this.refillTimer = setTimeout(() => {
      this.refillTimer = undefined;
      this.refill();
    }, this.refillDelay());
    this.refillTimer.unref();
    return sandbox;
  }

  async claimed(conversation: ConversationId, sandbox: PooledSandbox): Promise<void> {
    const token = this.tokens.get(sandbox.name);
    this.tokens.delete(sandbox.name);
    // The planted canary is the conversation's now; the snapshot is its workspace exactly.
    await Promise.all([
      token ? this.deps.canary.adopt(conversation, token) : undefined,
      this.deps.baselines?.seed(conversation, sandbox.containerId, sandbox.snapshot),
    ]);
  }

  discard(sandbox: PooledSandbox): void {
    this.tokens.delete(sandbox.name);
    void this.remove(sandbox.name);
  }

  /** Pooled sandboxes waiting on the engine, this pool's and any other worker's (they all hold a slot). */
  async count(): Promise<number> {
    return (await this.deps.driver.listPool()).length;
  }

  /** Removes up to `count` of this pool's ready sandboxes (to make room under SANDBOX_MAX_LIVE). */
  async shrink(count: number): Promise<number> {
    const gone = this.ready.splice(0, Math.max(0, count));
    let removed = 0;
    for (const sandbox of gone) {
      this.tokens.delete(sandbox.name);
      if (await this.remove(sandbox.name)) removed += 1;
    }
    return removed;
  }

  /** Stops refilling and removes this pool's sandboxes (their owner mark goes too). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    clearTimeout(this.refillTimer);
    await this.filling;
    await this.shrink(this.ready.length);
    await this.deps.redis.del(this.ownerKey(this.owner)).catch(() => undefined);
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    try {
      await this.markAlive();
      if (Date.now() - this.orphansCheckedAt >= ORPHAN_CHECK_MS) {
        this.orphansCheckedAt = Date.now();
        await this.removeOrphans();
      }
    } catch (error) {
      this.deps.logger.warn({ err: error }, 'warm pool upkeep failed');
    }
    this.refill();
  }

  /** The owner mark, holding how many of its sandboxes are ready (for operators and the bench). */
  private markAlive(): Promise<unknown> {
    return this.deps.redis.set(this.ownerKey(this.owner), String(this.ready.length), 'EX', OWNER_TTL_SECONDS);
  }

  /** Waiting pooled sandboxes of pools whose worker is gone (crashed, or killed without stopping). */
  private async removeOrphans(): Promise<void> {
    for (const pooled of await this.deps.driver.listPool()) {
      if (pooled.owner === this.owner) continue;
      if (await this.deps.redis.exists(this.ownerKey(pooled.owner))) continue;
      if (await this.remove(pooled.name)) {
        this.deps.logger.info(
          { pooled: pooled.name, owner: pooled.owner },
          'orphaned pooled sandbox removed',
        );
      }
    }
  }

  private refillDelay(): number {
    return this.options.refillDelayMs ?? 2000;
  }

  /** A claim came within the refill delay: new sandboxes wait (see take). */
  private claimedLately(): boolean {
    return Date.now() - this.lastTakeAt < this.refillDelay();
  }

  private refill(): void {
    if (this.stopped || this.filling || this.ready.length >= this.options.size || this.claimedLately())
      return;
    this.filling = this.fill().finally(() => {
      this.filling = undefined;
    });
  }

  private async fill(): Promise<void> {
    try {
      while (
        !this.stopped &&
        this.ready.length < this.options.size &&
        !this.claimedLately() &&
        (await this.roomForOne())
      ) {
        const token = newCanaryToken();
        const sandbox = await this.deps.driver.createPooled(this.owner, [
          { path: CANARY_PATH, bytes: canaryFileContent(token) },
        ]);
        if (this.stopped) {
          await this.remove(sandbox.name);
          return;
        }
        this.tokens.set(sandbox.name, token);
        this.ready.push(sandbox);
        await this.markAlive();
        this.deps.logger.debug({ pooled: sandbox.name, ready: this.ready.length }, 'pooled sandbox ready');
      }
    } catch (error) {
      // Tried again at the next tick; meanwhile new conversations start cold.
      this.deps.logger.warn({ err: error }, 'warm pool could not start a sandbox');
    }
  }

  /** Running sandboxes, ones being started and pooled ones stay below SANDBOX_MAX_LIVE with one more. */
  private async roomForOne(): Promise<boolean> {
    const [sandboxes, pooled] = await Promise.all([this.deps.driver.list(), this.deps.driver.listPool()]);
    const running = sandboxes.filter((s) => s.state === 'running').length;
    return running + this.deps.driver.starting() + pooled.length < this.options.maxLive;
  }

  private async remove(name: string): Promise<boolean> {
    try {
      return await this.deps.driver.removePooled(name);
    } catch (error) {
      this.deps.logger.warn({ err: error, pooled: name }, 'pooled sandbox not removed');
      return false;
    }
  }
}

/**
 * The pool SANDBOX_WARM_POOL asks for, or none. With size caps (SANDBOX_WORKSPACE_MB) each pooled
 * sandbox gets its own images, linked to the claiming conversation (disk-quota-link.ts); not under the
 * micro-VM, whose caps are made in its guest by a helper container: the setting is then ignored, with
 * a warning.
 */
export function warmPoolFor(
  config: {
    SANDBOX_WARM_POOL: number;
    SANDBOX_WORKSPACE_MB: number;
    SANDBOX_LAYER?: string;
    SANDBOX_MAX_LIVE: number;
    SANDBOT_INSTANCE: string;
  },
  deps: WarmPoolDeps,
): WarmPool | undefined {
  if (config.SANDBOX_WARM_POOL === 0) return undefined;
  if (config.SANDBOX_WORKSPACE_MB > 0 && config.SANDBOX_LAYER === 'microvm') {
    deps.logger.warn(
      'SANDBOX_WARM_POOL is ignored under SANDBOX_LAYER=microvm with size caps (made in the guest, which the pool cannot hand over yet)',
    );
    return undefined;
  }
  return new WarmPool(deps, {
    instance: config.SANDBOT_INSTANCE,
    size: config.SANDBOX_WARM_POOL,
    maxLive: config.SANDBOX_MAX_LIVE,
  });
}
