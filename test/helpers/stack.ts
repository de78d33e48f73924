import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createChatAdapters } from '../../adapters/index.js';
import { layerPlan, namedLayer } from '../../sandbox/host/layers/layer.js';
import { parseConfig } from '../../src/contracts/config/load.js';
import type { Config } from '../../src/contracts/config/schema.js';
import { createLogger } from '../../src/contracts/log/logger.js';
import { startGateway } from '../../src/gateway/start-gateway.js';
import { startWorker, type WorkerOverrides } from '../../src/worker/start-worker.js';
import { type FakeOllama, type FakeScript, startFakeOllama } from '../../testkit/fakes/fake-ollama.js';
import { cleanInstance, SANDBOX_IMAGE } from '../../testkit/instance.js';
import { REDIS_URL } from '../../testkit/redis.js';

/**
 * The sandbox layer every test stack runs under: `SANDBOT_TEST_LAYER=gvisor npx vitest run …` runs the
 * same tests with every sandbox under gVisor (npm test does so for the end-to-end and red-team files).
 */
export const TEST_LAYER = process.env.SANDBOT_TEST_LAYER ?? 'container';
/** The tests run every sandbox under gVisor (its /proc, /sys and limits look different from inside). */
export const UNDER_GVISOR = layerPlan(namedLayer(testConfig('layer-probe'))).gvisor;

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
    // The fake Slack and Discord stacks rely on open allowlists (the gateway refuses those unless told).
    SLACK_ALLOW_ALL: 'true',
    DISCORD_ALLOW_ALL: 'true',
    ...overrides,
  });
}

/** The real gateway and worker, in this process, as `sandbot up` runs them. */
export async function startStack(config: Config, overrides: WorkerOverrides = {}) {
  const logger = createLogger(config);
  const worker = await startWorker(config, logger, overrides);
  const gateway = await startGateway(config, logger, createChatAdapters);
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
