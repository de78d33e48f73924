import type Dockerode from 'dockerode';
import { type ConversationId, conversationKey } from '../../src/conversation/id.js';

/** What shapes every sandbox container; the same for all conversations of one deployment. */
export interface SandboxLimits {
  instance: string;
  image: string;
  /** OCI runtime registered with the engine (runsc …); the engine's default when absent. */
  runtime?: string;
  memoryMb: number;
  cpus: number;
  pidsLimit: number;
  tmpMb: number;
  /** Size caps of /workspace and /session (MiB); absent: plain Docker volumes, not capped. */
  disk?: { root: string; workspaceMb: number; sessionMb: number };
}

/** Host paths of size-capped volumes, when the limits ask for them. */
export interface QuotaPaths {
  workspace: string;
  session: string;
}

export interface SandboxNames {
  container: string;
  workspaceVolume: string;
  sessionVolume: string;
}

/** Where a sandbox may send traffic: the egress network and its proxy (absent: no network at all). */
export interface SandboxNetwork {
  name: string;
  proxyUrl: string;
}

export const NETWORK_LABEL = 'sandbot.network';
/** What a container was created with, so a policy change can be detected (and the container recreated). */
export const networkLabel = (network?: SandboxNetwork) =>
  network ? `${network.name} ${network.proxyUrl}` : 'none';

export const WORKSPACE_DIR = '/workspace';
export const SESSION_DIR = '/session';
/** The image's agent user; never root. */
export const SANDBOX_USER = '1000:1000';

export function sandboxNames(instance: string, conversation: ConversationId): SandboxNames {
  const key = conversationKey(conversation);
  return {
    container: `${instance}-sbx-${key}`,
    workspaceVolume: `${instance}-ws-${key}`,
    sessionVolume: `${instance}-sess-${key}`,
  };
}

export function sandboxLabels(instance: string, conversation: ConversationId): Record<string, string> {
  return { 'sandbot.instance': instance, 'sandbot.conversation': conversation, 'sandbot.kind': 'sandbox' };
}

/** Label filter that finds every sandbox of one deployment (containers and volumes alike). */
export function instanceFilter(instance: string): { label: string[] } {
  return { label: [`sandbot.instance=${instance}`, 'sandbot.kind=sandbox'] };
}

export function volumeSpecs(instance: string, conversation: ConversationId): Dockerode.VolumeCreateOptions[] {
  const names = sandboxNames(instance, conversation);
  const Labels = sandboxLabels(instance, conversation);
  return [
    { Name: names.workspaceVolume, Labels },
    { Name: names.sessionVolume, Labels },
  ];
}

/**
 * The hardened container: no network, read-only root, no capabilities, no privilege gain, uid 1000,
 * CPU/memory/pids limits, only its own two volumes, and no environment of sandbot's (no secrets, no
 * addresses). stdin stays open across attaches so a worker can detach and another re-attach.
 */
export function containerSpec(
  limits: SandboxLimits,
  conversation: ConversationId,
  network?: SandboxNetwork,
  quota?: QuotaPaths,
): Dockerode.ContainerCreateOptions {
  const names = sandboxNames(limits.instance, conversation);
  // A granted sandbox joins the internal egress network; its only way out is the proxy named here.
  const proxyEnv = network
    ? ['HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy'].map((name) => `${name}=${network.proxyUrl}`)
    : [];
  const memory = limits.memoryMb * 1024 * 1024;
  return {
    name: names.container,
    Image: limits.image,
    Labels: { ...sandboxLabels(limits.instance, conversation), [NETWORK_LABEL]: networkLabel(network) },
    Hostname: 'sandbox',
    User: SANDBOX_USER,
    WorkingDir: WORKSPACE_DIR,
    Env: proxyEnv,
    OpenStdin: true,
    StdinOnce: false,
    AttachStdin: true,
    AttachStdout: true,
    AttachStderr: true,
    Tty: false,
    HostConfig: {
      NetworkMode: network?.name ?? 'none',
      ReadonlyRootfs: true,
      Tmpfs: { '/tmp': `rw,noexec,nosuid,nodev,size=${limits.tmpMb}m` },
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges'],
      Privileged: false,
      IpcMode: 'private',
      Memory: memory,
      MemorySwap: memory,
      NanoCpus: Math.round(limits.cpus * 1e9),
      PidsLimit: limits.pidsLimit,
      // An init reaps the agent's orphans and forwards SIGTERM, so `stop` does not wait for the kill timeout.
      Init: true,
      ...(limits.runtime ? { Runtime: limits.runtime } : {}),
      Mounts: quota
        ? [
            { Type: 'bind', Source: quota.workspace, Target: WORKSPACE_DIR, ReadOnly: false },
            { Type: 'bind', Source: quota.session, Target: SESSION_DIR, ReadOnly: false },
          ]
        : [
            { Type: 'volume', Source: names.workspaceVolume, Target: WORKSPACE_DIR, ReadOnly: false },
            { Type: 'volume', Source: names.sessionVolume, Target: SESSION_DIR, ReadOnly: false },
          ],
      RestartPolicy: { Name: 'no' },
      // The protocol travels over attach; a log driver would copy every line (user files included) to disk.
      LogConfig: { Type: 'none', Config: {} },
    },
  };
}
