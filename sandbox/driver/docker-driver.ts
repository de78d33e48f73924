import type Dockerode from 'dockerode';
import type { ConversationId } from '../../src/conversation/id.js';
import type { Logger } from '../../src/log/logger.js';
import { ensureQuotaMount, removeQuotaMount } from './disk-quota.js';
import { countRunning, listSandboxes } from './docker-list.js';
import { listPooled, type PooledInfo, type PoolSource, removePooledSandbox } from './docker-pool.js';
import { claimFromPool, conversationVolumes, hasOwnVolumes, mountedVolumes } from './docker-pool-claim.js';
import { createPooledSandbox } from './docker-pool-create.js';
import { AttachedSession } from './docker-session.js';
import {
  containerSpec,
  NETWORK_LABEL,
  networkLabel,
  type QuotaPaths,
  RUNTIME_LABEL,
  runtimeLabel,
  type SandboxLimits,
  type SandboxNetwork,
  SKILLS_LABEL,
  sandboxNames,
  skillsLabel,
  volumeSpecs,
} from './docker-spec.js';
import { type AttachedAs, KeptSessions } from './kept-sessions.js';
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
  logger?: Logger;
}

/** Seconds a sandbox gets to exit on SIGTERM before it is killed. */
const STOP_TIMEOUT_SECONDS = 5;
/** Looks (100 ms apart) for a container another worker is still creating. */
const CREATE_RACE_ATTEMPTS = 50;

function statusOf(err: unknown): number | undefined {
  return (err as { statusCode?: number } | undefined)?.statusCode;
}

function messageOf(err: unknown): string {
  const e = err as { json?: { message?: string }; message?: string };
  return e?.json?.message ?? e?.message ?? String(err);
}

/** Options a pooled sandbox already satisfies: no network, and no skill mounts (or none asked). */
function plainOpen(options: OpenOptions): boolean {
  return Object.values(options).every((v) => v === undefined || (Array.isArray(v) && v.length === 0));
}

/** One container per conversation on one Docker-compatible engine (chosen by the Dockerode client). */
export class DockerSandboxDriver implements SandboxDriver {
  private readonly docker: Dockerode;
  private readonly limits: SandboxLimits;
  private readonly maxLineBytes: number;
  private readonly logger?: Logger;
  private readonly lifecycle = new Set<(event: SandboxLifecycleEvent) => void>();
  private pool?: PoolSource;
  /** Sandboxes open() is creating or starting right now (not running yet). */
  private startingNow = 0;
  /** Attach connections kept between turns (the worker's driver only: see keepAttached). */
  private kept?: KeptSessions;

  constructor(options: DockerSandboxDriverOptions) {
    const { docker, maxLineBytes, logger, ...limits } = options;
    this.docker = docker;
    this.limits = limits;
    this.maxLineBytes = maxLineBytes;
    this.logger = logger;
  }

  async open(conversation: ConversationId, options: OpenOptions = {}): Promise<SandboxSession> {
    const wanted = {
      network: networkLabel(options.network),
      ...(options.skills ? { skills: skillsLabel(options.skills) } : {}),
    };
    const leased = this.kept?.lease(conversation, wanted);
    if (leased) return leased;
    this.startingNow += 1;
    try {
      const { session, as } = await this.openCounted(conversation, options);
      return this.kept ? this.kept.keep(conversation, session, as) : session;
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
    let state = await this.inspectState(container);
    if (state !== undefined && state.runtime !== runtimeLabel(this.limits.runtime)) {
      // Made under another layer's runtime: never reuse it under a weaker (or different) one.
      await container.remove({ force: true });
      this.emit({ action: 'remove', conversation, reason: 'sandbox layer changed' });
      this.logger?.info(
        { conversation, runtime: runtimeLabel(this.limits.runtime) },
        'sandbox recreated for a new layer',
      );
      state = undefined;
    }
    if (state !== undefined && state.network !== networkLabel(options.network)) {
      // The network policy changed: recreate the container (its volumes, so its files, stay).
      await container.remove({ force: true });
      this.emit({ action: 'remove', conversation, reason: 'network policy changed' });
      this.logger?.info(
        { conversation, network: networkLabel(options.network) },
        'sandbox recreated for a new network policy',
      );
      state = undefined;
    }
    if (state !== undefined && options.skills && state.skills !== skillsLabel(options.skills)) {
      // Skills were enabled or disabled: recreate with the new read-only mounts (volumes kept).
      await container.remove({ force: true });
      this.emit({ action: 'remove', conversation, reason: 'skills changed' });
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
        state = await this.inspectState(container);
      }
    }
    const cold = state === undefined;
    // Size-capped volumes are loop mounts on the host: (re)mount them before the container starts.
    const quota = await this.quotaPaths(conversation);
    if (state === undefined) {
      await this.create(conversation, options.network, quota, options.skills);
      state = await this.inspectAfterCreate(container);
    }
    // Attach before starting so nothing the runtime prints at start-up is lost.
    const socket = await container.attach({
      stream: true,
      stdin: true,
      stdout: true,
      stderr: true,
      hijack: true,
    });
    const session = new AttachedSession(
      conversation,
      socket,
      (stream, out, err) => this.docker.modem.demuxStream(stream, out, err),
      this.maxLineBytes,
      this.logger,
      state.id,
    );
    if (!state.Running) {
      try {
        await container.start();
        this.logger?.info({ conversation, container: name }, 'sandbox started');
        this.emit({ action: 'start', conversation, ms: performance.now() - began, cold });
      } catch (err) {
        // 304: already started; a concurrent open may also have started it between inspect and start.
        if (statusOf(err) !== 304 && !(await this.inspectState(container))?.Running) {
          await session.close();
          throw new Error(`could not start sandbox ${name}: ${messageOf(err)}`);
        }
      }
    }
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
    return readOutboxFiles(this.container(conversation), sinceMs, maxBytes);
  }

  async readWorkspaceFiles(
    conversation: ConversationId,
    paths: readonly string[],
    maxBytes: number,
  ): Promise<WorkspaceFilesResult> {
    return readWorkspaceFiles(this.container(conversation), paths, maxBytes);
  }

  async snapshotWorkspace(conversation: ConversationId): Promise<WorkspaceSnapshot> {
    return snapshotWorkspace(this.container(conversation));
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
    if (options.wipe && this.limits.disk) {
      for (const volume of [names.workspaceVolume, names.sessionVolume]) {
        removed = (await removeQuotaMount(this.limits.disk.root, volume)) || removed;
      }
    }
    if (options.wipe) {
      for (const volume of await conversationVolumes(this.docker, this.limits.instance, names, mounted)) {
        try {
          await this.docker.getVolume(volume).remove();
          removed = true;
        } catch (err) {
          if (statusOf(err) !== 404) throw new Error(`could not remove volume ${volume}: ${messageOf(err)}`);
        }
      }
    }
    this.logger?.info({ conversation, wipe: options.wipe === true, removed }, 'sandbox removed');
    if (removed) this.emit({ action: options.wipe ? 'wipe' : 'remove', conversation });
    return removed;
  }

  private async inspectState(
    container: Dockerode.Container,
  ): Promise<{ Running: boolean; network: string; runtime: string; skills: string; id: string } | undefined> {
    try {
      const info = await container.inspect();
      return {
        Running: info.State.Running,
        network: info.Config.Labels?.[NETWORK_LABEL] ?? 'none',
        skills: info.Config.Labels?.[SKILLS_LABEL] ?? 'none',
        id: info.Id,
        // Containers made before the label existed ran under the engine's default runtime.
        runtime: info.Config.Labels?.[RUNTIME_LABEL] ?? runtimeLabel(undefined),
      };
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw new Error(`could not inspect sandbox ${container.id}: ${messageOf(err)}`);
    }
  }

  /**
   * After a create race the engine has reserved the name (our create got 409) but may not show the
   * other worker's container yet: look again briefly before giving up.
   */
  private async inspectAfterCreate(
    container: Dockerode.Container,
  ): Promise<{ Running: boolean; network: string; runtime: string; skills: string; id: string }> {
    for (let attempt = 0; attempt < CREATE_RACE_ATTEMPTS; attempt++) {
      const state = await this.inspectState(container);
      if (state !== undefined) return state;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`sandbox container ${container.id} vanished right after it was created`);
  }

  private async quotaPaths(conversation: ConversationId): Promise<QuotaPaths | undefined> {
    const disk = this.limits.disk;
    if (!disk) return undefined;
    const names = sandboxNames(this.limits.instance, conversation);
    return {
      workspace: await ensureQuotaMount(disk.root, names.workspaceVolume, disk.workspaceMb, [
        'inbox',
        'outbox',
      ]),
      session: await ensureQuotaMount(disk.root, names.sessionVolume, disk.sessionMb),
    };
  }

  private async create(
    conversation: ConversationId,
    network?: SandboxNetwork,
    quota?: QuotaPaths,
    skills?: OpenOptions['skills'],
  ): Promise<void> {
    // Creating a volume that exists returns it unchanged, so a concurrent open is harmless here.
    for (const volume of volumeSpecs(this.limits.instance, conversation)) {
      await this.docker.createVolume(volume);
    }
    const spec = containerSpec(this.limits, conversation, network, quota, skills);
    try {
      await this.docker.createContainer(spec);
      this.logger?.info({ conversation, container: spec.name }, 'sandbox created');
      this.emit({ action: 'create', conversation });
    } catch (err) {
      // 409: another worker created it between our inspect and create; use theirs.
      if (statusOf(err) === 409) return;
      if (statusOf(err) === 404) {
        throw new Error(
          `sandbox image "${this.limits.image}" is not on the container engine: ` +
            'build it with `npm run build && sandbot image build` (scripts/setup.sh does both)',
        );
      }
      throw new Error(`could not create sandbox ${spec.name}: ${messageOf(err)}`);
    }
  }
}
