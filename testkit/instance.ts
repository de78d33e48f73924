import { createDocker } from '../sandbox/host/driver/docker-client.js';
import { sandboxDriverFromConfig } from '../sandbox/host/driver/from-config.js';
import type { Config } from '../src/contracts/config/schema.js';
import { dropInstanceKeys } from './redis.js';

/** The sandbox image tests and benchmarks run (built by `sandbot image build`). */
export const SANDBOX_IMAGE = process.env.SANDBOX_IMAGE ?? 'sandbot-sandbox:latest';

/** Removes every sandbox (and its volumes) and every Redis key of a test instance. */
export async function cleanInstance(config: Config): Promise<void> {
  const driver = sandboxDriverFromConfig(config);
  for (const sandbox of await driver.list()) await driver.remove(sandbox.conversation, { wipe: true });
  for (const pooled of await driver.listPool()) await driver.removePooled(pooled.name);
  await createDocker(config.DOCKER_HOST)
    .getNetwork(`${config.SANDBOT_INSTANCE}-egress`)
    .remove()
    .catch(() => undefined);
  await dropInstanceKeys(config.SANDBOT_INSTANCE);
}
