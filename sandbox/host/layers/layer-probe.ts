import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type Dockerode from 'dockerode';
import type { Config } from '../../../src/contracts/config/schema.js';
import { createDocker } from '../driver/docker-client.js';
import { hardwareVirtualization } from '../vm/accel.js';
import { guestBuilt, vmPaths } from '../vm/paths.js';
import type { WithLayer } from './layer.js';
import { chooseLayer, describeChoice, type LayerChoice, type LayerProbe } from './layer-choice.js';

/**
 * The looking behind SANDBOX_LAYER=auto (the deciding is layer-choice.ts): /dev/kvm and the CPU's
 * flags, the micro-VM guest's files, the engine's registered runtimes. A named layer is not probed.
 * Resolved once per process (worker start, `sandbot doctor`, `sandbot vm status`, `sandbot sandbox …`)
 * so that everything after sees one concrete layer.
 */

export type LayerSettings = Pick<
  Config,
  'SANDBOX_LAYER' | 'SANDBOX_RUNTIME' | 'SANDBOT_VM_DIR' | 'SANDBOT_VM_ACCEL' | 'DOCKER_HOST'
>;

/** How long the engine may take to list its runtimes. */
const INFO_TIMEOUT_MS = 10_000;

export async function probeLayer(config: LayerSettings, docker: Dockerode): Promise<LayerProbe> {
  if (config.SANDBOX_LAYER !== 'auto') return { setting: config.SANDBOX_LAYER };
  const cpuinfo = await readFile('/proc/cpuinfo', 'utf8').catch(() => '');
  return {
    setting: 'auto',
    ...(config.SANDBOX_RUNTIME ? { runtime: config.SANDBOX_RUNTIME } : {}),
    hardware: hardwareVirtualization(config.SANDBOT_VM_ACCEL, existsSync('/dev/kvm'), cpuinfo),
    guestBuilt: guestBuilt(vmPaths(config.SANDBOT_VM_DIR)),
    runtimes: await registeredRuntimes(docker),
  };
}

async function registeredRuntimes(docker: Dockerode): Promise<string[] | { error: string }> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`no answer within ${INFO_TIMEOUT_MS / 1000} s`)),
      INFO_TIMEOUT_MS,
    );
  });
  try {
    const info = (await Promise.race([docker.info(), late])) as { Runtimes?: Record<string, unknown> };
    return Object.keys(info.Runtimes ?? {});
  } catch (error) {
    return { error: error instanceof Error ? error.message : String(error) };
  } finally {
    clearTimeout(timer);
  }
}

export type ResolvedLayer<C> =
  | (Extract<LayerChoice, { ok: true }> & { config: WithLayer<C> })
  | Extract<LayerChoice, { ok: false }>;

/** The settings with SANDBOX_LAYER made concrete (auto: the strongest layer found), and why. */
export async function resolveLayer<C extends LayerSettings>(
  config: C,
  docker: Dockerode = createDocker(config.DOCKER_HOST),
): Promise<ResolvedLayer<C>> {
  const choice = chooseLayer(await probeLayer(config, docker));
  if (!choice.ok) return choice;
  return { ...choice, config: { ...config, SANDBOX_LAYER: choice.layer } };
}

/** As resolveLayer, for callers that cannot go on without a layer (a worker, `sandbot sandbox …`). */
export async function resolveLayerOrThrow<C extends LayerSettings>(
  config: C,
  docker?: Dockerode,
): Promise<{ config: WithLayer<C>; choice: Extract<LayerChoice, { ok: true }>; described: string }> {
  const resolved = await resolveLayer(config, docker);
  if (!resolved.ok) throw new Error(`${resolved.reason} (fix: ${resolved.fix})`);
  const { config: layered, ...choice } = resolved;
  return { config: layered, choice, described: describeChoice(choice) };
}
