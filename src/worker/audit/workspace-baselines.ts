import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { WorkspaceSnapshot } from '../../../sandbox/host/driver/workspace-snapshot.js';
import type { ConversationId } from '../../contracts/conversation/id.js';
import { WORKSPACE_KEEP_IF_CLAIMED, WORKSPACE_MARK } from '../../contracts/redis/scripts.js';
import { ConversationValueStore } from '../../shared/stores/conversation-value.js';

interface Kept {
  token: string;
  containerId: string;
  snapshot: WorkspaceSnapshot;
  size: number;
}

export interface BaselineLimits {
  /** Snapshots with more entries (files and directories) are not kept. */
  maxEntries: number;
  /** Entries kept over all conversations; the least recently kept go first. */
  maxTotalEntries: number;
}

const DEFAULT_LIMITS: BaselineLimits = { maxEntries: 5000, maxTotalEntries: 100_000 };
const TTL_SECONDS = 7 * 24 * 3600;

/**
 * How each conversation's last turn left /workspace, so the next turn can start its audit diff (and its
 * canary check) from that instead of a new snapshot through the engine's archive API (≈65 ms before
 * the model sees the message). A kept snapshot is used only while nothing else can have changed the
 * workspace since:
 * - same container: a recreated, reset, wiped or re-claimed sandbox has a new container id;
 * - no turn in between, on any worker: every turn marks the workspace in Redis as its own when it
 *   starts (`claim`), and a snapshot is valid only while the mark is still the one set when it was kept;
 * - no process of the turn still running: the runtime reaps the agent's strays before it says
 *   `turn_done`, and the kept snapshot is taken after that (and only for a turn that ended so).
 * Anything the workspace gains between two turns regardless shows in the next turn's diff instead of
 * going unrecorded, as it would with a fresh snapshot.
 */
export class WorkspaceBaselines extends ConversationValueStore {
  private readonly kept = new Map<ConversationId, Kept>();
  private total = 0;

  constructor(
    redis: Redis,
    instance: string,
    private readonly limits: BaselineLimits = DEFAULT_LIMITS,
  ) {
    super(redis, instance, 'workspaceMark');
  }

  /**
   * Marks the workspace as the starting turn's (so no copy kept elsewhere stays valid) and returns the
   * snapshot kept here for this container, when still valid. `claim` is what `keep` needs later.
   */
  async claim(
    conversation: ConversationId,
    containerId: string | undefined,
  ): Promise<{ claim: string; snapshot?: WorkspaceSnapshot }> {
    const claim = `turn:${randomUUID()}`;
    const mine = this.forget(conversation);
    const previous = await this.redis.eval(WORKSPACE_MARK, 1, this.key(conversation), claim, TTL_SECONDS);
    const valid =
      mine !== undefined && !!containerId && mine.containerId === containerId && previous === mine.token;
    return { claim, ...(valid ? { snapshot: mine.snapshot } : {}) };
  }

  /** Keeps how the turn holding `claim` left the workspace of this container, for the next turn. */
  async keep(
    conversation: ConversationId,
    claim: string,
    containerId: string,
    snapshot: WorkspaceSnapshot,
  ): Promise<boolean> {
    const size = sizeOf(snapshot);
    if (!containerId || snapshot.truncated || size > this.limits.maxEntries) return false;
    const token = `kept:${randomUUID()}`;
    const set = await this.redis.eval(
      WORKSPACE_KEEP_IF_CLAIMED,
      1,
      this.key(conversation),
      claim,
      token,
      TTL_SECONDS,
    );
    if (set !== 1) return false;
    this.remember(conversation, { token, containerId, snapshot, size });
    return true;
  }

  /** A sandbox nobody has used yet, whose workspace is known exactly (claimed from the warm pool). */
  async seed(conversation: ConversationId, containerId: string, snapshot: WorkspaceSnapshot): Promise<void> {
    const size = sizeOf(snapshot);
    if (!containerId || snapshot.truncated || size > this.limits.maxEntries) return;
    const token = `seed:${randomUUID()}`;
    await this.redis.set(this.key(conversation), token, 'EX', TTL_SECONDS);
    this.remember(conversation, { token, containerId, snapshot, size });
  }

  private forget(conversation: ConversationId): Kept | undefined {
    const kept = this.kept.get(conversation);
    if (kept) {
      this.kept.delete(conversation);
      this.total -= kept.size;
    }
    return kept;
  }

  private remember(conversation: ConversationId, kept: Kept): void {
    this.forget(conversation);
    this.kept.set(conversation, kept);
    this.total += kept.size;
    for (const [oldest] of this.kept) {
      if (this.total <= this.limits.maxTotalEntries) break;
      this.forget(oldest);
    }
  }
}

function sizeOf(snapshot: WorkspaceSnapshot): number {
  return Object.keys(snapshot.entries).length + Object.keys(snapshot.directories ?? {}).length;
}
