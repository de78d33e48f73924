import type Dockerode from 'dockerode';
import type { Config } from '../../../src/contracts/config/schema.js';
import type { Logger } from '../../../src/contracts/log/logger.js';
import { layerPlan, namedLayer } from '../layers/layer.js';
import { createDocker } from './docker-client.js';
import { DockerSandboxDriver } from './docker-driver.js';
import { GUEST_QUOTA_ROOT } from './engine-quota.js';

/**
 * The sandbox driver the settings describe. `docker`: the engine to use instead of DOCKER_HOST's (the
 * micro-VM's guest engine under SANDBOX_LAYER=microvm, sandbox/host/vm/worker-guest.ts).
 */
export function sandboxDriverFromConfig(
  config: Config,
  logger?: Logger,
  docker?: Dockerode,
): DockerSandboxDriver {
  // SANDBOX_LAYER=auto is resolved before a driver is made (layer-probe.ts).
  const plan = layerPlan(namedLayer(config));
  return new DockerSandboxDriver({
    docker: docker ?? createDocker(config.DOCKER_HOST),
    instance: config.SANDBOT_INSTANCE,
    image: config.SANDBOX_IMAGE,
    // The layer decides the runtime, the pids limit and any environment the runtime needs.
    runtime: plan.runtime,
    env: plan.env,
    securityOpt: plan.securityOpt,
    memoryMb: plan.memoryMb,
    cpus: config.SANDBOX_CPUS,
    pidsLimit: plan.pidsLimit,
    ...(plan.nproc ? { nproc: plan.nproc } : {}),
    tmpMb: config.SANDBOX_TMP_MB,
    ...(config.SANDBOX_WORKSPACE_MB > 0
      ? {
          disk: {
            // Under the micro-VM the images live in the guest, made through its engine.
            root: plan.engine === 'guest' ? GUEST_QUOTA_ROOT : config.SANDBOX_DISK_DIR,
            workspaceMb: config.SANDBOX_WORKSPACE_MB,
            sessionMb: config.SANDBOX_SESSION_MB,
            ...(plan.engine === 'guest' ? { onEngine: true } : {}),
          },
        }
      : {}),
    maxLineBytes: config.SANDBOT_PROTOCOL_MAX_LINE_BYTES,
    bufferBytes: config.SANDBOT_PROTOCOL_BUFFER_BYTES,
    readBudget: {
      maxBytes: config.SANDBOX_WORKSPACE_READ_MB * 1024 * 1024,
      maxMs: config.SANDBOX_WORKSPACE_READ_SECONDS * 1000,
    },
    logger,
  });
}
