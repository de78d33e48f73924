import type { Config } from '../../src/config/schema.js';
import type { Logger } from '../../src/log/logger.js';
import { createDocker } from './docker-client.js';
import { DockerSandboxDriver } from './docker-driver.js';

/** The sandbox driver the settings describe. */
export function sandboxDriverFromConfig(config: Config, logger?: Logger): DockerSandboxDriver {
  return new DockerSandboxDriver({
    docker: createDocker(config.DOCKER_HOST),
    instance: config.SANDBOT_INSTANCE,
    image: config.SANDBOX_IMAGE,
    runtime: config.SANDBOX_RUNTIME,
    memoryMb: config.SANDBOX_MEMORY_MB,
    cpus: config.SANDBOX_CPUS,
    pidsLimit: config.SANDBOX_PIDS,
    tmpMb: config.SANDBOX_TMP_MB,
    ...(config.SANDBOX_WORKSPACE_MB > 0
      ? {
          disk: {
            root: config.SANDBOX_DISK_DIR,
            workspaceMb: config.SANDBOX_WORKSPACE_MB,
            sessionMb: config.SANDBOX_SESSION_MB,
          },
        }
      : {}),
    maxLineBytes: config.SANDBOT_PROTOCOL_MAX_LINE_BYTES,
    logger,
  });
}
