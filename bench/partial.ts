import { loadavg } from 'node:os';
import type { Redis } from 'ioredis';
import { measureBursts } from './burst.js';
import { type MessageProbe, measureCold } from './latency.js';
import { latency, sleep } from './stats.js';
import { freePort, measureModuleLoad, startUp } from './system.js';

/**
 * `SANDBOT_BENCH_ONLY=up,cold npm run bench`: only those parts, measured as the full run measures them,
 * printed and not written to bench/RESULTS.md (for iterating on one figure; the full run stays the record).
 */
export const BENCH_PARTS = ['up', 'cold', 'burst', 'burst-one', 'burst-pool', 'burst-steps'] as const;
export type BenchPart = (typeof BENCH_PARTS)[number];

/** The parts SANDBOT_BENCH_ONLY names, or undefined for the full run. */
export function benchParts(value: string | undefined): BenchPart[] | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const parts = value.split(',').map((part) => part.trim());
  const unknown = parts.filter((part) => !(BENCH_PARTS as readonly string[]).includes(part));
  if (unknown.length > 0) {
    throw new Error(
      `SANDBOT_BENCH_ONLY: unknown part ${unknown.join(', ')} (parts: ${BENCH_PARTS.join(', ')})`,
    );
  }
  return parts as BenchPart[];
}

const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

export async function runParts(
  parts: BenchPart[],
  context: { settings: Record<string, string>; redis: Redis; probe: MessageProbe; starts: number },
  log: (line: string) => void,
): Promise<void> {
  const { settings, redis, probe } = context;
  log(`load average: ${load()}`);
  if (parts.includes('up')) {
    const moduleLoad = await measureModuleLoad();
    const ready: number[] = [];
    const consuming: number[] = [];
    for (let i = 0; i < context.starts; i++) {
      const up = await startUp({ ...settings, SANDBOT_HTTP_PORT: String(await freePort()) }, redis);
      ready.push(up.readyMs);
      consuming.push(up.consumingMs);
      await up.stop();
    }
    log(`loading the CLI alone (sandbot --help): ${latency(moduleLoad)}`);
    log(`start to ready (/healthz 200): ${latency(ready)}`);
    log(`start to worker consuming: ${latency(consuming)}`);
  }
  if (parts.includes('cold')) {
    const up = await startUp({ ...settings, SANDBOT_HTTP_PORT: String(await freePort()) }, redis);
    try {
      await sleep(5000); // as in the full run, where the cold figure follows the idle-RSS pause
      log(`new conversation (cold), one at a time: ${latency(await measureCold(probe, up.url))}`);
    } finally {
      await up.stop();
    }
  }
  const burst = parts.includes('burst') || parts.includes('burst-one') || parts.includes('burst-pool');
  if (burst) {
    await measureBursts(
      {
        redis,
        ollamaUrl: probe.ollama.url,
        auditDir: settings.SANDBOT_AUDIT_DIR as string,
        // burst-pool alone: only the pooled burst.
        runs: parts.some((p) => p === 'burst' || p === 'burst-one')
          ? Number(process.env.SANDBOT_BENCH_BURST_RUNS ?? 3)
          : 0,
        twoHosts: parts.includes('burst'),
        runc: parts.includes('burst'),
        pooled: parts.includes('burst') || parts.includes('burst-pool') ? 1 : 0,
        // A smaller burst, to look into one (the table's figures are of BURST_SIZE).
        ...(process.env.SANDBOT_BENCH_BURST_SIZE ? { n: Number(process.env.SANDBOT_BENCH_BURST_SIZE) } : {}),
      },
      log,
    );
  }
  if (parts.includes('burst-steps')) {
    const { measureSteps, stepsTable } = await import('./burst-steps.js');
    const n = Number(process.env.SANDBOT_BENCH_STEPS_N ?? 40);
    for (const c of (process.env.SANDBOT_BENCH_STEPS_C ?? '1,4,16').split(',').map(Number)) {
      const layer = { ...settings, SANDBOX_LAYER: process.env.SANDBOT_BENCH_STEPS_LAYER ?? 'gvisor' };
      log(`open steps, ${n} new sandboxes ${c} at a time:\n${stepsTable(await measureSteps(layer, n, c))}`);
    }
  }
  log(`load average: ${load()}`);
}
