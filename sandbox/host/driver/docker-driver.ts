import type Dockerode from 'dockerode';
import type { ConversationId } from '../../../src/contracts/conversation/id.js';
import type { Logger } from '../../../src/contracts/log/logger.js';
import type { ReadBudget } from './archive-read.js';
import { createSandbox, messageOf, quotaPaths, removeVolumes, statusOf } from './docker-container.js';
import { countRunning, listSandboxes } from './docker-list.js';
import { openSandbox } from './docker-open.js';
import { listPooled, type PooledInfo, type PoolSource, removePooledSandbox } from './docker-pool.js';
import { mountedVolumes } from './docker-pool-claim.js';
import { createPooledSandbox, pooledDiskRoot } from './docker-pool-create.js';
import { networkLabel, type SandboxLimits, sandboxNames, skillsLabel } from './docker-spec.js';
import { KeptSessions } from './kept-sessions.js';
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
  /** The running count in flight (countRunning). */
  private census?: Promise<{ sandboxes: number; pooled: number }>;
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

  private openCounted(conversation: ConversationId, options: OpenOptions) {
    const { docker, limits, maxLineBytes, bufferBytes, logger, pool } = this;
    const emit = (event: SandboxLifecycleEvent) => this.emit(event);
    return openSandbox(
      { docker, limits, maxLineBytes, bufferBytes, logger, pool, emit },
      conversation,
      options,
    );
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

  /** Lets open() give new conversations a sandbox from this pool (not with caps made in the micro-VM). */
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
    return removePooledSandbox(this.docker, this.limits.instance, name, pooledDiskRoot(this.limits));
  }

  async list(): Promise<SandboxInfo[]> {
    return listSandboxes(this.docker, this.limits.instance);
  }

  /**
   * Callers at the same time share one listing: in a burst every new conversation asks (room under
   * SANDBOX_MAX_LIVE, this host's free slots), and each listing costs the engine a look at every
   * container. A caller that comes while one is in flight takes its answer (begun a moment before it
   * asked: the same race as two counts side by side).
   */
  countRunning(): Promise<{ sandboxes: number; pooled: number }> {
    this.census ??= countRunning(this.docker, this.limits.instance).finally(() => {
      this.census = undefined;
    });
    return this.census;
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

  /**
   * Makes the conversation's sandbox here without starting it, its size-capped volumes made as for any
   * new one, for files to be copied in (`sandbot host drain`); its first turn starts it. Its container.
   */
  async prepare(conversation: ConversationId): Promise<Dockerode.Container> {
    const quota = await quotaPaths(this.docker, this.limits, conversation);
    if (await createSandbox(this.docker, this.limits, conversation, { quota }, this.logger))
      this.emit({ action: 'create', conversation });
    return this.container(conversation);
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
