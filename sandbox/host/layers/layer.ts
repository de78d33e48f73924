import type { Config } from '../../../src/contracts/config/schema.js';
import { gvisorSeccompOpt } from './gvisor-seccomp.js';

/**
 * The isolation layers one setting (SANDBOX_LAYER) picks, turned into what the driver needs. Pure: the
 * start-up check (layer-check.ts) proves the plan can run before a worker takes any work, and a worker
 * whose plan cannot run refuses to start; it never falls back to a weaker layer.
 */

/** What SANDBOX_LAYER may say: a layer, or `auto` (the strongest the host has, chosen at start). */
export type LayerSetting = Config['SANDBOX_LAYER'];
/** A layer itself: `auto` is resolved to one of these before anything is planned (layer-choice.ts). */
export type SandboxLayer = Exclude<LayerSetting, 'auto'>;
/** Settings whose SANDBOX_LAYER names a layer (auto resolved). */
export type WithLayer<C> = C & { SANDBOX_LAYER: SandboxLayer };

/**
 * The settings as they are when SANDBOX_LAYER names a layer; `auto` here is a wiring mistake: it is
 * resolved once at start (layer-probe.ts) so that every part of a process sees the same layer.
 */
export function namedLayer<C extends { SANDBOX_LAYER: LayerSetting }>(config: C): WithLayer<C> {
  if (config.SANDBOX_LAYER === 'auto') {
    throw new Error('SANDBOX_LAYER=auto must be resolved to a layer before use (resolveLayer)');
  }
  return config as WithLayer<C>;
}

/**
 * Which engine the sandboxes live on: `local` is the engine at DOCKER_HOST; `guest` is the engine inside
 * sandbot's micro-VM (sandbox/host/vm), whose endpoint and start-up check the micro-VM code supplies.
 */
export type EngineKind = 'local' | 'guest';

export interface LayerPlan {
  layer: SandboxLayer;
  /** OCI runtime every sandbox runs under; undefined: the engine's default (runc). */
  runtime?: string;
  /** The runtime is gVisor: a user-space kernel between the sandbox and the host's. */
  gvisor: boolean;
  engine: EngineKind;
  /** Memory limit given to the engine, MiB (under gVisor its kernel's own memory counts against it). */
  memoryMb: number;
  /** Host tasks the engine allows the container (under gVisor each agent process costs ~16-18). */
  pidsLimit: number;
  /** The agent's process limit as enforced inside the sandbox's own kernel (gVisor: RLIMIT_NPROC). */
  nproc?: number;
  /** Environment every sandbox gets on top of its own (never a secret). */
  env: string[];
  /** Extra engine security options (gVisor: its seccomp profile). */
  securityOpt: string[];
}

/** gVisor's runtime as Debian's `runsc` package and gVisor's own installer name it. */
export const GVISOR_RUNTIME = 'runsc';
/**
 * Under gVisor (ptrace platform) the sandbox's kernel and each agent process take host tasks from the
 * container's pids cgroup: ~55 idle, then 16-18 per agent process held (measured: 64 processes →
 * 1,051 tasks, 256 → 4,546), and more while processes churn: a fork bomb at 128 processes peaked above
 * 2,688 (20 per process) about one run in eight, and gVisor's sentry panics when it cannot start a
 * host task, which takes the whole sandbox down. So the agent's own limit (SANDBOX_PIDS) is enforced
 * inside gVisor as RLIMIT_NPROC, and the cgroup, with room for that churn, only backs it up (its
 * tasks' kernel memory is charged to the sandbox's memory cgroup all the same).
 */
export const GVISOR_MIN_PIDS = 1024;
export const GVISOR_TASKS_PER_PROCESS = 40;
export const GVISOR_BASE_TASKS = 128;
/** gVisor's kernel (sentry, gofer) lives in the container's memory cgroup: ~25 MiB idle, measured. */
export const GVISOR_MEMORY_OVERHEAD_MB = 64;
/**
 * gVisor before 2023 refuses AT_NO_AUTOMOUNT in statx/fstatat, which coreutils' `ls` and `stat` always
 * pass (EINVAL on every path). This preload, built into the image where a C compiler was found, clears
 * the flag (gVisor has no automounts, so nothing changes in meaning).
 */
export const GVISOR_STATX_SHIM = '/opt/sandbot/gvisor/statx-shim.so';

/** Runtime names that are gVisor by their name (runsc, runsc-kvm, gvisor …). */
export const looksLikeGvisor = (runtime: string | undefined): boolean =>
  runtime !== undefined && /runsc|gvisor/i.test(runtime);

export function layerPlan(
  config: WithLayer<Pick<Config, 'SANDBOX_RUNTIME' | 'SANDBOX_PIDS' | 'SANDBOX_MEMORY_MB'>>,
): LayerPlan {
  const layer = config.SANDBOX_LAYER;
  // gvisor: runsc unless another (gVisor) runtime is named; the start-up check proves it really is gVisor.
  // container: whatever runtime is named (runsc included: it is then gVisor all the same), else the default.
  const runtime = layer === 'gvisor' ? (config.SANDBOX_RUNTIME ?? GVISOR_RUNTIME) : config.SANDBOX_RUNTIME;
  const gvisor = layer === 'gvisor' || (layer === 'container' && looksLikeGvisor(runtime));
  return {
    layer: gvisor ? 'gvisor' : layer,
    ...(runtime ? { runtime } : {}),
    gvisor,
    engine: layer === 'microvm' ? 'guest' : 'local',
    ...(gvisor
      ? {
          memoryMb: config.SANDBOX_MEMORY_MB + GVISOR_MEMORY_OVERHEAD_MB,
          pidsLimit: Math.max(
            GVISOR_MIN_PIDS,
            GVISOR_BASE_TASKS + GVISOR_TASKS_PER_PROCESS * config.SANDBOX_PIDS,
          ),
          nproc: config.SANDBOX_PIDS,
          env: [`LD_PRELOAD=${GVISOR_STATX_SHIM}`],
          securityOpt: [gvisorSeccompOpt()],
        }
      : { memoryMb: config.SANDBOX_MEMORY_MB, pidsLimit: config.SANDBOX_PIDS, env: [], securityOpt: [] }),
  };
}

/** One line naming the layer in force, for logs, `sandbot doctor` and /readyz. */
export function describePlan(plan: LayerPlan): string {
  const runtime = plan.runtime ?? "the engine's default runtime (runc)";
  if (plan.engine === 'guest') return `microvm: every sandbox in sandbot's micro-VM, under ${runtime}`;
  if (plan.gvisor) return `gvisor: every sandbox under ${runtime} (gVisor's user-space kernel)`;
  return `container: every sandbox under ${runtime}`;
}

/** How to register a runtime with a Docker engine, for fix texts. */
export function registrationHint(runtime: string): string {
  if (looksLikeGvisor(runtime)) {
    return (
      `install gVisor (Debian/Ubuntu: \`apt-get install runsc\`), add "runtimes": {"${runtime}": ` +
      `{"path": "/usr/bin/runsc", "runtimeArgs": ["--network=none", "--oci-seccomp"]}} to ` +
      '/etc/docker/daemon.json (keep what is there; `bash scripts/setup.sh` does both) and reload the engine ' +
      '(`kill -HUP $(pidof dockerd)`)'
    );
  }
  return (
    `register ${runtime} under "runtimes" in /etc/docker/daemon.json ({"runtimes": {"${runtime}": {"path": ` +
    '"/path/to/it"}}) and reload the engine (`kill -HUP $(pidof dockerd)`)'
  );
}
