import type Dockerode from 'dockerode';
import type { ConversationId } from '../../../src/contracts/conversation/id.js';
import type { Logger } from '../../../src/contracts/log/logger.js';
import type { ReadBudget } from './archive-read.js';
import {
  createSandbox,
  inspectAfterCreate,
  inspectState,
  messageOf,
  quotaPaths,
  recreateReason,
  removeVolumes,
  statusOf,
} from './docker-container.js';
import { countRunning, listSandboxes } from './docker-list.js';
import { listPooled, type PooledInfo, type PoolSource, removePooledSandbox } from './docker-pool.js';
import { claimFromPool, hasOwnVolumes, mountedVolumes } from './docker-pool-claim.js';
import { createPooledSandbox } from './docker-pool-create.js';
import { type AttachedSession, attachRuntime } from './docker-session.js';
import { networkLabel, runtimeLabel, type SandboxLimits, sandboxNames, skillsLabel } from './docker-spec.js';
import { type AttachedAs, KeptSessions } from './kept-sessions.js';
import { SandboxReads } from './sandbox-reads.js';
import { withEgressTunnel } from './tunnel-session.js';
import type {
  OpenOptions,
  SandboxDriver,
  SandboxInfo,
  SandboxLifecycleEvent,
  SandboxSession,
} from './types.js';
import {
  type FileBytes,
  type OutboxResult,
  putInboxFiles,
  putWorkspaceFile,
  readOutboxFiles,
} from './workspace-files.js';
import { readWorkspaceFiles, type WorkspaceFilesResult } from './workspace-read.js';
import { snapshotWorkspace, type WorkspaceSnapshot } from './workspace-snapshot.js';

export interface DockerSandboxDriverOptions extends SandboxLimits {
  docker: Dockerode;
  /** Longest protocol line accepted from a sandbox's stdout. */
  maxLineBytes: number;
  /** What a sandbox's output may hold of the worker's memory before a turn listens (bytes). */
  bufferBytes?: number;
  /** What one read of a sandbox's files (snapshot, outbox, delegation copy) may stream and take. */
  readBudget?: Omit<ReadBudget, 'signal'>;
  logger?: Logger;
}

/** Seconds a sandbox gets to exit on SIGTERM before it is killed. */
const STOP_TIMEOUT_SECONDS = 5;
/** Options a pooled sandbox already satisfies: no network, and no skill mounts (or none asked). */
function plainOpen(options: OpenOptions): boolean {
  return Object.values(options).every((v) => v === undefined || (Array.isArray(v) && v.length === 0));
}

/** One container per conversation on one Docker-compatible engine (chosen by the Dockerode client). */
export class DockerSandboxDriver implements SandboxDriver {
  private readonly docker: Dockerode;
  private readonly limits: SandboxLimits;
  private readonly maxLineBytes: number;
  private readonly bufferBytes: number | undefined;
  private readonly logger?: Logger;
  private readonly lifecycle = new Set<(event: SandboxLifecycleEvent) => void>();
  private pool?: PoolSource;
  /** Sandboxes open() is creating or starting right now (not running yet). */
  private startingNow = 0;
  /** Attach connections kept between turns (the worker's driver only: see keepAttached). */
  private kept?: KeptSessions;
  private readonly reads: SandboxReads;

  constructor(options: DockerSandboxDriverOptions) {
    const { docker, logger, readBudget, ...limits } = options;
    this.reads = new SandboxReads(readBudget);
    this.docker = docker;
    this.limits = limits;
    this.maxLineBytes = options.maxLineBytes;
    this.bufferBytes = options.bufferBytes;
    this.logger = logger;
  }

  async open(conversation: ConversationId, options: OpenOptions = {}): Promise<SandboxSession> {
    const wanted = {
      network: networkLabel(options.network),
      ...(options.skills ? { skills: skillsLabel(options.skills) } : {}),
    };
    const network = options.network;
    // A tunnelled sandbox reaches the egress proxy through this lease on its protocol stream.
    const tunnelled = (session: SandboxSession) =>
      network?.via === 'tunnel' ? withEgressTunnel(session, network.connect) : session;
    const leased = this.kept?.lease(conversation, wanted);
    if (leased) return tunnelled(leased);
    this.startingNow += 1;
    try {
      const { session, as } = await this.openCounted(conversation, options);
      return tunnelled(this.kept ? this.kept.keep(conversation, session, as) : session);
    } finally {
      this.startingNow -= 1;
    }
  }

  private async openCounted(
    conversation: ConversationId,
    options: OpenOptions,
  ): Promise<{ session: AttachedSession; as: AttachedAs }> {
    const began = performance.now();
    const name = sandboxNames(this.limits.instance, conversation).container;
    const container = this.docker.getContainer(name);
    // With a warm pool, a new conversation claims a pooled sandbox unless it has volumes of its own:
    // asked alongside the inspect rather than after it.
    const claimable = this.pool && !this.limits.disk && plainOpen(options) ? this.pool : undefined;
    const ownVolumes = claimable ? hasOwnVolumes(this.docker, this.limits.instance, conversation) : undefined;
    ownVolumes?.catch(() => undefined);
    let state = await inspectState(container);
    const stale =
      state &&
      recreateReason(state, {
        runtime: runtimeLabel(this.limits.runtime),
        network: networkLabel(options.network),
        ...(options.skills ? { skills: skillsLabel(options.skills) } : {}),
      });
    if (stale) {
      // Recreated, never reused as it is: its volumes (so its files) stay.
      await container.remove({ force: true });
      this.emit({ action: 'remove', conversation, reason: stale });
      this.logger?.info({ conversation, reason: stale }, 'sandbox recreated');
      state = undefined;
    }
    if (state === undefined && claimable && ownVolumes) {
      // A new conversation without network or skills: take a sandbox the warm pool started before.
      const pooled = await claimFromPool(
        this.docker,
        this.limits.instance,
        claimable,
        conversation,
        ownVolumes,
        this.logger,
      );
      if (pooled) {
        this.emit({ action: 'create', conversation, pooled: true });
        this.emit({
          action: 'start',
          conversation,
          ms: performance.now() - began,
          cold: false,
          pooled: true,
        });
        state = await inspectState(container);
      }
    }
    const cold = state === undefined;
    // Size-capped volumes are loop mounts on the engine's host: (re)mount them before the container
    // starts (a running one has them).
    const quota = state?.Running ? undefined : await quotaPaths(this.docker, this.limits, conversation);
    if (state === undefined) {
      const created = await createSandbox(
        this.docker,
        this.limits,
        conversation,
        { ...options, quota },
        this.logger,
      );
      if (created) this.emit({ action: 'create', conversation });
      // Ours is known without an inspect; one another worker created first is looked up.
      state = created ?? (await inspectAfterCreate(container));
    }
    const session = await attachRuntime(
      this.docker,
      container,
      conversation,
      this.maxLineBytes,
      this.logger,
      state.id,
      this.bufferBytes,
    );
    if (!state.Running) {
      try {
        // Before the start: the runtime's first line may come before start() returns.
        session.expectStartupReady();
        await container.start();
        this.logger?.info({ conversation, container: name }, 'sandbox started');
        this.emit({ action: 'start', conversation, ms: performance.now() - began, cold });
      } catch (err) {
        // 304: already started; a concurrent open may also have started it between inspect and start.
        if (statusOf(err) !== 304 && !(await inspectState(container))?.Running) {
          await session.close();
          throw new Error(`could not start sandbox ${name}: ${messageOf(err)}`);
        }
      }
    }
    // The runtime's long lines are framed with this session's key from here on (protocol/frames.ts).
    session.greet();
    return { session, as: { network: state.network, skills: state.skills } };
  }

  async state(conversation: ConversationId): Promise<string | undefined> {
    // A kept attach stream ends when its container stops: while it is open, the container runs.
    if (this.kept?.has(conversation)) return 'running';
    try {
      return (await this.container(conversation).inspect()).State.Status;
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw new Error(`could not inspect the sandbox of ${conversation}: ${messageOf(err)}`);
    }
  }

  /**
   * Keeps up to `max` attach connections open between turns (a warm open then costs no engine call);
   * for a long-running worker, which calls dropAttached() when it stops.
   */
  keepAttached(max: number): void {
    this.kept = max > 0 ? new KeptSessions(max) : undefined;
  }

  dropAttached(): void {
    this.kept?.dropAll();
  }

  /** Cuts every read of sandboxes' files, now and later: a stopping worker waits on none. */
  closeReads(): void {
    this.reads.close();
  }

  /** Sandboxes being created or started by open() right now (the warm pool leaves room for them). */
  starting(): number {
    return this.startingNow;
  }

  /** Lets open() give new conversations a sandbox from this pool (never with size-capped volumes). */
  usePool(pool: PoolSource | undefined): void {
    this.pool = pool;
  }

  /** Starts a pooled sandbox with these files in /workspace, ready for a conversation to claim. */
  createPooled(owner: string, seed: { path: string; bytes: Buffer }[]) {
    return createPooledSandbox(
      { docker: this.docker, limits: this.limits, maxLineBytes: this.maxLineBytes },
      owner,
      seed,
    );
  }

  /** Pooled sandboxes waiting on this engine (all workers of the instance). */
  listPool(): Promise<PooledInfo[]> {
    return listPooled(this.docker, this.limits.instance);
  }

  /** Removes a waiting pooled sandbox; false when it is gone or was claimed meanwhile. */
  removePooled(name: string): Promise<boolean> {
    return removePooledSandbox(this.docker, this.limits.instance, name);
  }

  async list(): Promise<SandboxInfo[]> {
    return listSandboxes(this.docker, this.limits.instance);
  }

  countRunning(): Promise<{ sandboxes: number; pooled: number }> {
    return countRunning(this.docker, this.limits.instance);
  }

  async stop(conversation: ConversationId): Promise<boolean> {
    this.kept?.drop(conversation);
    this.reads.abort(conversation);
    const name = sandboxNames(this.limits.instance, conversation).container;
    try {
      await this.docker.getContainer(name).stop({ t: STOP_TIMEOUT_SECONDS });
    } catch (err) {
      if (statusOf(err) === 404) return false;
      if (statusOf(err) !== 304) throw new Error(`could not stop sandbox ${name}: ${messageOf(err)}`);
    }
    this.logger?.info({ conversation, container: name }, 'sandbox stopped');
    this.emit({ action: 'stop', conversation });
    return true;
  }

  async kill(conversation: ConversationId): Promise<boolean> {
    this.kept?.drop(conversation);
    this.reads.abort(conversation);
    try {
      await this.container(conversation).kill({ signal: 'SIGKILL' });
    } catch (err) {
      // 404: no such sandbox here; 409: it is not running.
      if (statusOf(err) === 404 || statusOf(err) === 409) return false;
      throw new Error(`could not kill sandbox of ${conversation}: ${messageOf(err)}`);
    }
    this.logger?.warn({ conversation }, 'sandbox killed');
    return true;
  }

  async putWorkspaceFile(conversation: ConversationId, path: string, bytes: Buffer): Promise<void> {
    await putWorkspaceFile(this.container(conversation), path, bytes);
  }

  async putInbox(conversation: ConversationId, files: FileBytes[]): Promise<void> {
    if (files.length === 0) return;
    await putInboxFiles(this.container(conversation), files);
  }

  async readOutbox(conversation: ConversationId, sinceMs: number, maxBytes: number): Promise<OutboxResult> {
    return this.reads.run(conversation, (budget) =>
      readOutboxFiles(this.container(conversation), sinceMs, maxBytes, undefined, budget),
    );
  }

  async readWorkspaceFiles(
    conversation: ConversationId,
    paths: readonly string[],
    maxBytes: number,
  ): Promise<WorkspaceFilesResult> {
    return this.reads.run(conversation, (budget) =>
      readWorkspaceFiles(this.container(conversation), paths, maxBytes, budget),
    );
  }

  async snapshotWorkspace(conversation: ConversationId): Promise<WorkspaceSnapshot> {
    return this.reads.run(conversation, (budget) =>
      snapshotWorkspace(this.container(conversation), undefined, budget),
    );
  }

  /** Tells `listener` what happens to sandboxes here (for the audit log and metrics); returns an unsubscribe. */
  onLifecycle(listener: (event: SandboxLifecycleEvent) => void): () => void {
    this.lifecycle.add(listener);
    return () => this.lifecycle.delete(listener);
  }

  private emit(event: SandboxLifecycleEvent): void {
    for (const listener of this.lifecycle) {
      try {
        listener(event);
      } catch (err) {
        this.logger?.warn({ err, action: event.action }, 'sandbox lifecycle listener failed');
      }
    }
  }

  private container(conversation: ConversationId): Dockerode.Container {
    return this.docker.getContainer(sandboxNames(this.limits.instance, conversation).container);
  }

  async remove(conversation: ConversationId, options: { wipe?: boolean } = {}): Promise<boolean> {
    this.kept?.drop(conversation);
    this.reads.abort(conversation);
    const names = sandboxNames(this.limits.instance, conversation);
    let removed = false;
    // A sandbox claimed from the pool keeps its files in pooled volumes: learn which before it goes.
    const mounted = options.wipe ? await mountedVolumes(this.docker, names.container) : [];
    try {
      await this.docker.getContainer(names.container).remove({ force: true });
      removed = true;
    } catch (err) {
      if (statusOf(err) !== 404) {
        throw new Error(`could not remove sandbox ${names.container}: ${messageOf(err)}`);
      }
    }
    if (options.wipe) removed = (await removeVolumes(this.docker, this.limits, names, mounted)) || removed;
    this.logger?.info({ conversation, wipe: options.wipe === true, removed }, 'sandbox removed');
    if (removed) this.emit({ action: options.wipe ? 'wipe' : 'remove', conversation });
    return removed;
  }
}
