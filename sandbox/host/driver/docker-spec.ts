import type { Duplex } from 'node:stream';
import type Dockerode from 'dockerode';
import { type ConversationId, conversationKey } from '../../../src/contracts/conversation/id.js';
import { EGRESS_TUNNEL_PORT } from '../../../src/contracts/protocol/egress.js';
import { AGENT_UID } from '../../../src/contracts/protocol/skill-tools.js';
import type { SkillMount } from './skill-mount.js';

/** What confines an agent's container, a conversation's sandbox or a skill's vetting run alike. */
export interface Confinement {
  memoryMb: number;
  cpus: number;
  pidsLimit: number;
  tmpMb: number;
  /** The agent's process limit inside the sandbox's own kernel (gVisor), as RLIMIT_NPROC. */
  nproc?: number;
  runtime?: string;
  /** The layer's security options (gVisor: its seccomp profile), after no-new-privileges. */
  securityOpt: readonly string[];
  /** Capabilities kept (every other is dropped). */
  capAdd?: readonly string[];
  /** More tmpfs mounts beside the noexec /tmp. */
  tmpfs?: Record<string, string>;
}

/**
 * One place for the hardening both container kinds share: read-only root, a noexec /tmp, capabilities
 * dropped, no new privileges, private IPC, memory without swap, CPU and process caps, an init.
 */
export function confinedHostConfig(c: Confinement): Dockerode.HostConfig {
  const memory = c.memoryMb * 1024 * 1024;
  return {
    ReadonlyRootfs: true,
    Tmpfs: { '/tmp': `rw,noexec,nosuid,nodev,size=${c.tmpMb}m`, ...c.tmpfs },
    CapDrop: ['ALL'],
    ...(c.capAdd ? { CapAdd: [...c.capAdd] } : {}),
    SecurityOpt: ['no-new-privileges', ...c.securityOpt],
    Privileged: false,
    IpcMode: 'private',
    Memory: memory,
    MemorySwap: memory,
    NanoCpus: Math.round(c.cpus * 1e9),
    PidsLimit: c.pidsLimit,
    // Only under gVisor: there RLIMIT_NPROC counts this sandbox's processes alone (on runc, every
    // container's uid 1000 on the host).
    ...(c.nproc ? { Ulimits: [{ Name: 'nproc', Soft: c.nproc, Hard: c.nproc }] } : {}),
    // An init reaps the agent's orphans and forwards SIGTERM, so `stop` does not wait for the kill timeout.
    Init: true,
    ...(c.runtime ? { Runtime: c.runtime } : {}),
  };
}

/** What shapes every sandbox container; the same for all conversations of one deployment. */
export interface SandboxLimits {
  instance: string;
  image: string;
  /** OCI runtime registered with the engine (runsc …); the engine's default when absent. */
  runtime?: string;
  /** Environment the layer needs in every sandbox (never a secret); see sandbox/layer.ts. */
  env?: string[];
  /** The agent's process limit inside the sandbox's own kernel (gVisor), as RLIMIT_NPROC. */
  nproc?: number;
  /** Security options the layer adds (gVisor: its seccomp profile). */
  securityOpt?: string[];
  memoryMb: number;
  cpus: number;
  pidsLimit: number;
  tmpMb: number;
  /** The protocol's line cap, given to the runtime too (absent: the runtime's default, 1 MiB). */
  maxLineBytes?: number;
  /**
   * Size caps of /workspace and /session (MiB); absent: plain Docker volumes, not capped. `onEngine`:
   * the images and mounts live on the engine's host, reached through a helper container (the
   * micro-VM's guest); otherwise on the worker's own host, which is the engine's.
   */
  disk?: { root: string; workspaceMb: number; sessionMb: number; onEngine?: boolean };
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

/**
 * Where a sandbox may send traffic (absent: nowhere, no network at all). Either way its only way out is
 * the egress proxy named by `proxyUrl`:
 * - `bridge` (the default, absent `via`): it joins the instance's internal egress network;
 * - `tunnel`: it has no network device; its runtime listens on its loopback and carries each connection
 *   over the protocol stream to the worker, which `connect`s it to the proxy (src/contracts/protocol/egress.ts),
 *   saying which skill's tools opened it, if the runtime said so.
 *   For layers without a usable bridge: gVisor registered with --network=none, the micro-VM.
 */
export type SandboxNetwork =
  | { via?: 'bridge'; name: string; proxyUrl: string }
  | { via: 'tunnel'; proxyUrl: string; connect: (from?: { skill?: string }) => Duplex };

export const NETWORK_LABEL = 'sandbot.network';
/** Which skill volumes a container mounts, so enabling or disabling a skill recreates it (volumes kept). */
export const SKILLS_LABEL = 'sandbot.skills';
export const skillsLabel = (skills: readonly SkillMount[] = []) =>
  skills.length
    ? skills
        .map((s) => `${s.name}=${s.volume}`)
        .sort()
        .join(',')
    : 'none';
/** The runtime a container was made for, so a change of layer recreates it instead of reusing it. */
export const RUNTIME_LABEL = 'sandbot.runtime';
export const runtimeLabel = (runtime?: string) => runtime ?? 'default';
/** What a container was created with, so a policy change can be detected (and the container recreated). */
export const networkLabel = (network?: SandboxNetwork) =>
  network ? `${network.via === 'tunnel' ? 'tunnel' : network.name} ${network.proxyUrl}` : 'none';

export const WORKSPACE_DIR = '/workspace';
export const SESSION_DIR = '/session';

/**
 * The agent runtime's command line in a sandbox: the image's CMD (sandbox/Dockerfile, kept the same by
 * a test) with the worker's line cap and, for a tunnelled sandbox, the egress tunnel's port. Settings
 * go as arguments, not environment: the sandbox's environment holds nothing of sandbot's.
 */
export const RUNTIME_COMMAND = [
  'node',
  '/opt/sandbot/dist/sandbox/runtime/main.js',
  '--workspace',
  '/workspace',
  '--session',
  '/session',
  '--reap-strays',
];
export function runtimeCommand(maxLineBytes: number | undefined, tunnel: boolean): string[] {
  return [
    ...RUNTIME_COMMAND,
    '--agent-uid',
    String(AGENT_UID),
    ...(maxLineBytes ? ['--max-line-bytes', String(maxLineBytes)] : []),
    ...(tunnel ? ['--egress-port', String(EGRESS_TUNNEL_PORT)] : []),
  ];
}
/** The image's agent user; never root. */
export const SANDBOX_USER = `${AGENT_UID}:${AGENT_UID}`;
/**
 * The runtime starts as root with only these capabilities, drops to the agent's uid at once (keeping
 * root as its saved uid) and starts every process as one uid with nothing more (sandbox/runtime/
 * privilege.ts): the agent's commands as SANDBOX_USER, a skill holding a proxy credential as its own,
 * so the agent can read neither that skill's processes nor the runtime's memory.
 */
export const RUNTIME_USER = '0:0';
export const RUNTIME_CAPABILITIES = ['SETUID', 'SETGID', 'SETPCAP', 'KILL'];

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
 * The hardened container: no network, read-only root, no capabilities, no privilege gain, uid 1000
 * for everything the agent runs (the runtime: see RUNTIME_USER),
 * CPU/memory/pids limits, only its own two volumes, and no environment of sandbot's (no secrets, no
 * addresses). stdin stays open across attaches so a worker can detach and another re-attach.
 */
export function containerSpec(
  limits: SandboxLimits,
  conversation: ConversationId,
  network?: SandboxNetwork,
  quota?: QuotaPaths,
  skills?: readonly SkillMount[],
): Dockerode.ContainerCreateOptions {
  const names = sandboxNames(limits.instance, conversation);
  // A granted sandbox joins the internal egress network, or gets the tunnel; its only way out is the
  // proxy named here.
  const proxyEnv = network
    ? ['HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy'].map((name) => `${name}=${network.proxyUrl}`)
    : [];
  return {
    name: names.container,
    Image: limits.image,
    Labels: {
      ...sandboxLabels(limits.instance, conversation),
      [NETWORK_LABEL]: networkLabel(network),
      [SKILLS_LABEL]: skillsLabel(skills),
      [RUNTIME_LABEL]: runtimeLabel(limits.runtime),
    },
    Hostname: 'sandbox',
    Cmd: runtimeCommand(limits.maxLineBytes, network?.via === 'tunnel'),
    User: RUNTIME_USER,
    WorkingDir: WORKSPACE_DIR,
    Env: [...(limits.env ?? []), ...proxyEnv],
    OpenStdin: true,
    StdinOnce: false,
    AttachStdin: true,
    AttachStdout: true,
    AttachStderr: true,
    Tty: false,
    HostConfig: {
      NetworkMode: network && network.via !== 'tunnel' ? network.name : 'none',
      ...confinedHostConfig({
        ...limits,
        capAdd: RUNTIME_CAPABILITIES,
        securityOpt: limits.securityOpt ?? [],
      }),
      Mounts: [
        ...(quota
          ? [
              { Type: 'bind' as const, Source: quota.workspace, Target: WORKSPACE_DIR, ReadOnly: false },
              { Type: 'bind' as const, Source: quota.session, Target: SESSION_DIR, ReadOnly: false },
            ]
          : [
              {
                Type: 'volume' as const,
                Source: names.workspaceVolume,
                Target: WORKSPACE_DIR,
                ReadOnly: false,
              },
              { Type: 'volume' as const, Source: names.sessionVolume, Target: SESSION_DIR, ReadOnly: false },
            ]),
        // Vetted skills: each its own volume of approved files, read-only (the agent cannot change them).
        ...(skills ?? []).map((s) => ({
          Type: 'volume' as const,
          Source: s.volume,
          Target: `/skills/${s.name}`,
          ReadOnly: true,
        })),
      ],
      RestartPolicy: { Name: 'no' },
      // The protocol travels over attach; a log driver would copy every line (user files included) to disk.
      LogConfig: { Type: 'none', Config: {} },
    },
  };
}
