import type Docker from 'dockerode';
import { describePlan, layerPlan } from '../../sandbox/layer.js';
import { checkLayer } from '../../sandbox/layer-check.js';
import type { Config } from '../config/schema.js';
import { checkGuestAtRest } from '../vm/worker-guest.js';
import type { DoctorCheck } from './checks.js';

/** Starting a container (under gVisor, its kernel too) takes longer than a ping. */
export const LAYER_TIMEOUT_MS = 30_000;

/** The layer in force, its runtime registered, and a container of the sandbox image really run under it. */
export async function checkSandboxLayer(
  name: string,
  docker: Docker,
  config: Config,
  timeoutMs: number,
): Promise<DoctorCheck> {
  const plan = layerPlan(config);
  const verdict = await checkLayer(plan, {
    docker,
    endpoint: config.DOCKER_HOST,
    image: config.SANDBOX_IMAGE,
    instance: config.SANDBOT_INSTANCE,
    probe: 'always',
    timeoutMs,
    // The micro-VM layer: the guest built, its engine reachable and holding the image (not the host's).
    guest: (p) => checkGuestAtRest(config, p),
  });
  if (!verdict.ok)
    return { name, ok: false, detail: `${describePlan(plan)}: ${verdict.reason}`, fix: verdict.fix };
  const detail = `${describePlan(plan)}; ${verdict.detail}`;
  if (verdict.network.ok) return { name, ok: true, detail };
  // Without network the layer still runs; it is a failure only where grants are configured.
  const granted = config.SANDBOT_NETWORK_RULES.length > 0;
  return {
    name,
    ok: !granted,
    detail: `${detail}; network grants cannot be served: ${verdict.network.reason}`,
    ...(granted
      ? {
          fix: 'use SANDBOX_LAYER=container for conversations that need a network, or a gVisor release that can use a container network (registered without --network=none)',
        }
      : {}),
  };
}
