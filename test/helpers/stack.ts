import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDocker } from '../../sandbox/host/driver/docker-client.js';
import { sandboxDriverFromConfig } from '../../sandbox/host/driver/from-config.js';
import { layerPlan } from '../../sandbox/host/layers/layer.js';
import { parseConfig } from '../../src/contracts/config/load.js';
import type { Config } from '../../src/contracts/config/schema.js';
import { createLogger } from '../../src/contracts/log/logger.js';
import { startGateway } from '../../src/gateway/start-gateway.js';
import { startWorker, type WorkerOverrides } from '../../src/worker/start-worker.js';
import { type FakeOllama, type FakeScript, startFakeOllama } from '../fakes/fake-ollama.js';
import { dropInstanceKeys, REDIS_URL } from './redis.js';

export const SANDBOX_IMAGE = process.env.SANDBOX_IMAGE ?? 'sandbot-sandbox:latest';
/**
 * The sandbox layer every test stack runs under: `SANDBOT_TEST_LAYER=gvisor npx vitest run …` runs the
 * same tests with every sandbox under gVisor (npm test does so for the end-to-end and red-team files).
 */
export const TEST_LAYER = process.env.SANDBOT_TEST_LAYER ?? 'container';
/** The tests run every sandbox under gVisor (its /proc, /sys and limits look different from inside). */
export const UNDER_GVISOR = layerPlan(testConfig('layer-probe')).gvisor;

/** Settings for a test stack: its own instance, a random port, a short lease so takeovers are quick. */
export function testConfig(instance: string, overrides: Record<string, string> = {}): Config {
  return parseConfig({
    SANDBOT_INSTANCE: instance,
    SANDBOT_REDIS_URL: REDIS_URL,
    SANDBOX_IMAGE,
    SANDBOX_LAYER: TEST_LAYER,
    SANDBOT_HTTP_PORT: '0',
    SANDBOT_TURN_LEASE_SECONDS: '3',
    SANDBOT_LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    SANDBOX_MEMORY_MB: '256',
    SANDBOT_WEB_CHAT: 'on',
    // Audit files of test instances go to the system's temp dir, not the checkout.
    SANDBOT_AUDIT_DIR: join(tmpdir(), 'sandbot-test-audit'),
    // Size-capped volumes are on by default; their images go to the temp dir too.
    SANDBOX_DISK_DIR: join(tmpdir(), 'sandbot-test-volumes'),
    ...overrides,
  });
}

/** The real gateway and worker, in this process, as `sandbot up` runs them. */
export async function startStack(config: Config, overrides: WorkerOverrides = {}) {
  const logger = createLogger(config);
  const worker = await startWorker(config, logger, overrides);
  const gateway = await startGateway(config, logger);
  return {
    url: gateway.url,
    worker,
    gateway,
    async stop() {
      await gateway.stop();
      await worker.stop();
    },
  };
}

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

export type ScriptedStack = Awaited<ReturnType<typeof startStack>> & { ollama: FakeOllama };

/**
 * A fake Ollama playing `script` (serving the config's model), and the stack against it. `stop` takes
 * both down and removes the instance's sandboxes and keys.
 */
export async function startScriptedStack(
  config: Config,
  script: FakeScript,
  overrides: WorkerOverrides = {},
): Promise<ScriptedStack> {
  const ollama = await startFakeOllama({ models: [config.SANDBOT_MODEL], script });
  Object.assign(config, { OLLAMA_HOST: ollama.url });
  const stack = await startStack(config, overrides).catch(async (error: unknown) => {
    await ollama.close();
    throw error;
  });
  return {
    ...stack,
    ollama,
    async stop() {
      await stack.stop();
      await ollama.close();
      await cleanInstance(config);
    },
  };
}
