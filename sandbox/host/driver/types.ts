import type { ConversationId } from '../../../src/contracts/conversation/id.js';
import type { RuntimeToWorker, WorkerToRuntime } from '../../../src/contracts/protocol/agent.js';
import type { LineResult } from '../../../src/contracts/protocol/lines.js';
import type { SandboxNetwork } from './docker-spec.js';
import type { SkillMount } from './skill-mount.js';
import type { FileBytes, OutboxResult } from './workspace-files.js';
import type { WorkspaceFilesResult } from './workspace-read.js';
import type { WorkspaceSnapshot } from './workspace-snapshot.js';

export interface SandboxInfo {
  conversation: ConversationId;
  containerId: string;
  name: string;
  /** Docker's state: created, running, exited, … */
  state: string;
  createdAt: string;
  /** Started in the warm pool before the conversation claimed it. */
  pooled?: boolean;
}

/** An attached protocol stream to one sandbox's agent runtime. */
export interface SandboxSession {
  readonly conversation: ConversationId;
  /** The engine's id of the container attached to: a recreated, reset or wiped sandbox has a new one. */
  readonly containerId: string;
  /**
   * This open started the container (created it, or started it again): nothing of the agent's can be
   * running in it yet. Only the first session on it says so.
   */
  readonly fresh?: boolean;
  send(message: WorkerToRuntime): void;
  /** Every parsed line, or a protocol error (bad JSON, wrong shape, over the line cap). */
  onMessage(listener: (result: LineResult<RuntimeToWorker>) => void): () => void;
  /** The stream ended (container stopped, engine gone). */
  onClose(listener: (reason: string) => void): () => void;
  /** Detaches; the container keeps running. */
  close(): Promise<void>;
  /**
   * What the sandbox wrote while no turn held it, since the previous lease ended (kept sessions only;
   * an honest runtime writes nothing then): the turn runner adds these to the turn's bad lines at its
   * start, so they trip the same protocol-abuse tripwire. Read once per lease (it resets).
   */
  betweenTurns?(): StrayOutput;
  /** Whether the sandbox's stdin is backed up: a writer that can wait (the egress tunnel) should. */
  blocked?(): boolean;
  /** Calls `listener` once the sandbox's stdin has drained. */
  onDrain?(listener: () => void): () => void;
}

/** Lines (with their bytes) a sandbox wrote outside any turn. */
export interface StrayOutput {
  lines: number;
  bytes: number;
}

export interface OpenOptions {
  /** The egress network to join; absent: no network. A container made otherwise is recreated (volumes kept). */
  network?: SandboxNetwork;
  /** Skill volumes to mount read-only at /skills/<name>; absent: keep what the container has, else recreated to match. */
  skills?: readonly SkillMount[];
  /**
   * Files a new size-capped /workspace is formatted with (agent-owned, folders 0700, files 0600): the
   * canary, so a new conversation's needs no archive upload. Asked for only when an image is formatted
   * here; `planted` is then called. Not used otherwise (an existing or uncapped volume, the micro-VM).
   */
  seed?: WorkspaceSeed;
}

export interface WorkspaceSeed {
  files(): Promise<{ path: string; bytes: Buffer }[]>;
  planted(): void;
}

/** Keeps one container per conversation on one container engine. */
export interface SandboxDriver {
  /** Creates (first message) or starts (after idle stop) the conversation's sandbox, then attaches. */
  open(conversation: ConversationId, options?: OpenOptions): Promise<SandboxSession>;
  list(): Promise<SandboxInfo[]>;
  /** How many sandboxes run: conversations' and the warm pool's (one listing, no conversation ids). */
  countRunning(): Promise<{ sandboxes: number; pooled: number }>;
  /** Docker's state of the conversation's container (running, exited, …); undefined when there is none. */
  state(conversation: ConversationId): Promise<string | undefined>;
  /** Stops the container; its volumes stay. False when there is none. */
  stop(conversation: ConversationId): Promise<boolean>;
  /** SIGKILLs the container at once (volumes stay, for the operator to inspect). False when not running. */
  kill(conversation: ConversationId): Promise<boolean>;
  /** Writes one file at a path relative to /workspace, from outside the container. */
  putWorkspaceFile(conversation: ConversationId, path: string, bytes: Buffer): Promise<void>;
  /** Copies files into /workspace/inbox, from outside the container (the engine's archive API). */
  putInbox(conversation: ConversationId, files: FileBytes[]): Promise<void>;
  /** Regular files of /workspace/outbox changed since `sinceMs`, read from outside the container. */
  readOutbox(conversation: ConversationId, sinceMs: number, maxBytes: number): Promise<OutboxResult>;
  /** Regular files at these paths relative to /workspace, read from outside the container (delegation). */
  readWorkspaceFiles(
    conversation: ConversationId,
    paths: readonly string[],
    maxBytes: number,
  ): Promise<WorkspaceFilesResult>;
  /** Removes the container, and with `wipe` its /workspace and /session volumes. */
  remove(conversation: ConversationId, options?: { wipe?: boolean }): Promise<boolean>;
  /** Paths, sizes and hashes of /workspace, read from outside the container (for the audit log). */
  snapshotWorkspace(conversation: ConversationId): Promise<WorkspaceSnapshot>;
}

/** What happened to a sandbox, as the driver saw it (`ms`: from open to running). */
export type SandboxLifecycleEvent =
  | { action: 'create' | 'stop' | 'wipe'; conversation: ConversationId; pooled?: boolean }
  | { action: 'remove'; conversation: ConversationId; reason?: string }
  | { action: 'start'; conversation: ConversationId; ms: number; cold: boolean; pooled?: boolean };
