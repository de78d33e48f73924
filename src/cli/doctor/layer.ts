import type Docker from 'dockerode';
import { describePlan, layerPlan } from '../../../sandbox/host/layers/layer.js';
import { checkLayer, type EgressRoute } from '../../../sandbox/host/layers/layer-check.js';
import { resolveLayer } from '../../../sandbox/host/layers/layer-probe.js';
import { checkGuestAtRest } from '../../../sandbox/host/vm/worker-guest.js';
import type { Config } from '../../contracts/config/schema.js';
import type { DoctorCheck } from '../../contracts/doctor/check.js';

/** Starting a container (under gVisor, its kernel too) takes longer than a ping. */
export const LAYER_TIMEOUT_MS = 30_000;

/**
 * The layer in force (SANDBOX_LAYER=auto: chosen as a worker would, and why), its runtime registered,
 * and a container of the sandbox image really run under it.
 */
export async function checkSandboxLayer(
  name: string,
  docker: Docker,
  settings: Config,
  timeoutMs: number,
): Promise<DoctorCheck> {
  const resolved = await resolveLayer(settings, docker);
  if (!resolved.ok) return { name, ok: false, detail: resolved.reason, fix: resolved.fix };
  const { config } = resolved;
  const plan = layerPlan(config);
  const chosen = resolved.auto ? `; chosen by SANDBOX_LAYER=auto: ${resolved.reason}` : '';
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
    return { name, ok: false, detail: `${describePlan(plan)}: ${verdict.reason}${chosen}`, fix: verdict.fix };
  return {
    name,
    ok: true,
    detail: `${describePlan(plan)}; ${verdict.detail}; ${egressNote(verdict.egress)}${chosen}`,
  };
}

/** How network grants are served under the layer, in the operator's words. */
export const egressNote = (route: EgressRoute) =>
  route === 'tunnel'
    ? 'network grants through the protocol tunnel (sandboxes have no network device)'
    : 'network grants through the internal egress network';
