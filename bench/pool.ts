import type { Redis } from 'ioredis';
import { sandboxDriverFromConfig } from '../sandbox/host/driver/from-config.js';
import { parseConfig } from '../src/contracts/config/load.js';
import { webConversationId } from '../src/contracts/conversation/id.js';
import type { MessageProbe } from './latency.js';
import { until } from './stats.js';
import { freePort, startUp } from './system.js';

export const POOL_SIZE = 2;

export interface PoolResults {
  size: number;
  /** Message → agent sees it, for new conversations, each sent once the pool was full again. */
  samples: number[];
  /** How many of them the pool served (the rest started cold: the pool was not ready). */
  served: number;
  /** Pool full → refilled after a claim: how long a new sandbox takes to be ready in the background. */
  refillMs: number[];
}

/** Ready sandboxes of the instance's warm pools, as their owner marks in Redis say. */
export async function readyInPool(redis: Redis, instance: string): Promise<number> {
  const keys = await redis.keys(`${instance}:pool-owner:*`);
  const values = keys.length > 0 ? await redis.mget(...keys) : [];
  return values.reduce((sum, v) => sum + Number(v ?? 0), 0);
}

/**
 * A `sandbot up` with SANDBOX_WARM_POOL: new conversations one at a time, each once the pool is full
 * again (the pool's refill is background work; what is measured is a new conversation finding one).
 */
export async function measurePool(
  probe: MessageProbe,
  settings: Record<string, string>,
  redis: Redis,
  log: (line: string) => void,
  n = 10,
): Promise<PoolResults> {
  const poolSettings = {
    ...settings,
    SANDBOX_WARM_POOL: String(POOL_SIZE),
    // Uncapped as when this row was first measured (capped pools: the burst's pooled row).
    SANDBOX_WORKSPACE_MB: '0',
    SANDBOT_HTTP_PORT: String(await freePort()),
  };
  const instance = settings.SANDBOT_INSTANCE as string;
  const driver = sandboxDriverFromConfig(parseConfig(poolSettings));
  const up = await startUp(poolSettings, redis);
  const results: PoolResults = { size: POOL_SIZE, samples: [], served: 0, refillMs: [] };
  const full = async () => {
    const began = performance.now();
    await until(
      'the warm pool full',
      async () => ((await readyInPool(redis, instance)) >= POOL_SIZE ? true : undefined),
      120_000,
    );
    return performance.now() - began;
  };
  try {
    await full();
    for (let i = 0; i < n; i++) {
      const session = `pooled-${i}`;
      results.samples.push(await probe.measure(up.url, session));
      const sandbox = (await driver.list()).find((s) => s.conversation === webConversationId(session));
      if (sandbox?.pooled) results.served += 1;
      results.refillMs.push(await full());
    }
    log(`  warm pool of ${POOL_SIZE}: ${results.served} of ${n} new conversations served from it`);
  } finally {
    await up.stop();
  }
  return results;
}
