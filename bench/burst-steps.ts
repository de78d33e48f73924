import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSandbox, quotaPaths } from '../sandbox/host/driver/docker-container.js';
import { attachRuntime } from '../sandbox/host/driver/docker-session.js';
import { sandboxNames } from '../sandbox/host/driver/docker-spec.js';
import { sandboxDriverFromConfig } from '../sandbox/host/driver/from-config.js';
import { parseConfig } from '../src/contracts/config/load.js';
import { webConversationId } from '../src/contracts/conversation/id.js';
import { CANARY_PATH } from '../src/worker/turn/canary.js';
import { mapLimit, median, percentile } from './stats.js';

/**
 * Where a new conversation's sandbox open spends its time when many open at once: the steps of
 * openSandbox (docker-open.ts) one by one, timed, then the canary put and the audit snapshot the turn
 * makes before the runtime gets it. `SANDBOT_BENCH_ONLY=burst-steps`; N opens, C at a time.
 */
export const STEPS = [
  'disk caps',
  'create',
  'attach',
  'start',
  'runtime ready',
  'canary',
  'snapshot',
] as const;
type Step = (typeof STEPS)[number];

export async function measureSteps(
  settings: Record<string, string>,
  n: number,
  concurrency: number,
): Promise<Record<Step | 'total', number[]>> {
  const disk = mkdtempSync(join(tmpdir(), 'sandbot-steps-disk-'));
  const config = parseConfig({ ...settings, SANDBOX_DISK_DIR: disk });
  const driver = sandboxDriverFromConfig(config);
  const limits = (driver as unknown as { limits: Parameters<typeof quotaPaths>[1] }).limits;
  const docker = (driver as unknown as { docker: Parameters<typeof quotaPaths>[0] }).docker;
  const out = Object.fromEntries([...STEPS, 'total'].map((s) => [s, [] as number[]])) as Record<
    Step | 'total',
    number[]
  >;
  const names = Array.from({ length: n }, (_, i) => webConversationId(`steps-${i}`));
  try {
    await mapLimit(names, concurrency, async (conversation) => {
      const began = performance.now();
      let at = began;
      const lap = (step: Step) => {
        const now = performance.now();
        out[step].push(now - at);
        at = now;
      };
      const quota = await quotaPaths(docker, limits, conversation);
      lap('disk caps');
      const state = await createSandbox(docker, limits, conversation, { quota });
      lap('create');
      const container = docker.getContainer(sandboxNames(limits.instance, conversation).container);
      const session = await attachRuntime(docker, container, conversation, 1 << 20, undefined, state?.id);
      lap('attach');
      const ready = new Promise<void>((resolve) => {
        const off = session.onMessage((line) => {
          if (line.ok && line.value.type === 'ready') {
            off();
            resolve();
          }
        });
      });
      await container.start();
      lap('start');
      await ready;
      lap('runtime ready');
      await driver.putWorkspaceFile(conversation, CANARY_PATH, Buffer.from('x'));
      lap('canary');
      await driver.snapshotWorkspace(conversation);
      lap('snapshot');
      out.total.push(performance.now() - began);
      await session.close();
    });
  } finally {
    await mapLimit(names, 8, (c) => driver.remove(c, { wipe: true }).catch(() => false));
    rmSync(disk, { recursive: true, force: true });
  }
  return out;
}

export function stepsTable(steps: Record<string, number[]>): string {
  return Object.entries(steps)
    .map(
      ([step, samples]) =>
        `${step.padEnd(14)} p50 ${median(samples).toFixed(0).padStart(6)} ms · p99 ${percentile(samples, 99).toFixed(0).padStart(6)} ms`,
    )
    .join('\n');
}
