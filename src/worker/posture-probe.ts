import type Dockerode from 'dockerode';
import { layerPlan } from '../../sandbox/host/layers/layer.js';
import { judgeRegistration, type RegisteredRuntime } from '../../sandbox/host/layers/layer-check.js';
import { chooseLayer } from '../../sandbox/host/layers/layer-choice.js';
import { probeLayer } from '../../sandbox/host/layers/layer-probe.js';
import type { Config } from '../contracts/config/schema.js';
import type { PostureFacts } from '../shared/posture/posture.js';

/**
 * The host's part of the posture report (`sandbot doctor --security`, and each worker's report for
 * `/readyz`): the layer in force and the strongest this host runs (SANDBOX_LAYER=auto's choice), how
 * grants reach the proxy, and the engine's version and user namespaces. Parts that cannot be learnt
 * (the engine down) are left out; the pure judging is in shared/posture/posture.ts.
 */

export type HostPostureSettings = Pick<
  Config,
  | 'SANDBOX_LAYER'
  | 'SANDBOX_RUNTIME'
  | 'SANDBOT_VM_DIR'
  | 'SANDBOT_VM_ACCEL'
  | 'DOCKER_HOST'
  | 'SANDBOX_PIDS'
  | 'SANDBOX_MEMORY_MB'
>;

interface EngineInfo {
  ServerVersion?: string;
  SecurityOptions?: string[];
  Runtimes?: Record<string, RegisteredRuntime>;
}

export async function probeHostPosture(
  config: HostPostureSettings,
  docker: Dockerode,
  timeoutMs = 5000,
): Promise<Pick<PostureFacts, 'layer' | 'engine'>> {
  const info = await within(docker.info() as Promise<EngineInfo>, timeoutMs).catch(() => undefined);
  if (!info) return {};
  const facts: Pick<PostureFacts, 'layer' | 'engine'> = {
    engine: { version: info.ServerVersion ?? 'unknown', userns: usesUserNamespaces(info.SecurityOptions) },
  };
  const strongest = chooseLayer(
    await within(probeLayer({ ...config, SANDBOX_LAYER: 'auto' }, docker), timeoutMs).catch(() => ({
      setting: 'container' as const,
    })),
  );
  const named =
    config.SANDBOX_LAYER === 'auto' ? (strongest.ok ? strongest.layer : undefined) : config.SANDBOX_LAYER;
  if (!named) return facts;
  const plan = layerPlan({ ...config, SANDBOX_LAYER: named });
  const registration = judgeRegistration(plan, info.Runtimes ?? {});
  // The micro-VM's sandboxes have no network device: grants always go through the tunnel.
  const egress = plan.layer === 'microvm' ? 'tunnel' : registration.ok ? registration.egress : undefined;
  facts.layer = {
    inForce: plan.layer,
    ...(strongest.ok ? { strongest: strongest.layer } : {}),
    ...(egress ? { egress } : {}),
  };
  return facts;
}

/** `docker info`'s security options name userns (userns-remap) or rootless when container root is not host root. */
export const usesUserNamespaces = (options: readonly string[] = []) =>
  options.some((option) => /\bname=(userns|rootless)\b/.test(option));

function within<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}
