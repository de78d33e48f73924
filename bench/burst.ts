import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { sandboxDriverFromConfig } from '../sandbox/host/driver/from-config.js';
import { resolveLayer } from '../sandbox/host/layers/layer-probe.js';
import { parseConfig } from '../src/contracts/config/load.js';
import { readHosts } from '../src/shared/hosts/host-report.js';
import { type ExtraEngine, startExtraEngine } from '../testkit/engine.js';
import { cleanInstance } from '../testkit/instance.js';
import { afterBurst, fillPool, type PoolBurst, poolSettings, unmountUnder } from './burst-pool.js';
import { type CpuUse, cpuNow, cpuSpent } from './cpu-use.js';
import { replyStream } from './reply-stream.js';
import { mapLimit, median, percentile, sleep, until } from './stats.js';
import { benchSettings, freePort, startUp, upEnvironment } from './system.js';

/**
 * Bursts (issue #20 item 5): 100 new web conversations POSTed at once, each timed from just before its
 * POST to its reply event on the conversation's event stream (the fake model answers at once), on one
 * host (`sandbot up`) and on two (a `sandbot worker` on a second engine beside it). The product's
 * defaults (gVisor where registered, disk caps on), except the settings in BURST_SETTINGS.
 */
export const BURST_SIZE = 100;

/** What the burst changes from the defaults, and why (shown with the figures). */
export const BURST_SETTINGS: Record<string, string> = {
  // The issue's 100 conversations live at once on one host; the default keeps 50 per worker running
  // and would stop the first replies' sandboxes to start the rest.
  SANDBOX_MAX_LIVE: '100',
};

export interface BurstRun {
  samples: number[];
  /** First POST → last reply. */
  wallMs: number;
  /** Sandboxes per engine afterwards (the second host's share). */
  perHost: number[];
  load: string;
  /** CPU seconds each part spent during the burst (bench/cpu-use.ts). */
  cpu: CpuUse;
  /** A burst served by a warm pool filled before it (bench/burst-pool.ts). */
  pool?: PoolBurst;
}

export interface BurstResults {
  size: number;
  settings: Record<string, string>;
  oneHost: BurstRun[];
  twoHosts: BurstRun[];
  /** One host under runc (SANDBOX_LAYER=container) instead of the default layer: what the layer costs. */
  runc: BurstRun[];
  /** One host with a warm pool as large as the burst, filled before it (default layer, caps on). */
  pooled: BurstRun[];
  /** The layer SANDBOX_LAYER=auto chose here. */
  layer: string;
}

const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

/** The medians over the runs of each run's p50, p99 and wall time. */
export function medianOf(runs: BurstRun[]): { p50: number; p99: number; wallMs: number } {
  return {
    p50: median(runs.map((r) => median(r.samples))),
    p99: median(runs.map((r) => percentile(r.samples, 99))),
    wallMs: median(runs.map((r) => r.wallMs)),
  };
}

/** What SANDBOX_LAYER=auto resolves to on this machine (the layer the default bursts ran under). */
async function autoLayer(settings: Record<string, string>): Promise<string> {
  const resolved = await resolveLayer(parseConfig(settings));
  return resolved.ok ? resolved.layer : `none (${resolved.reason})`;
}

/** SANDBOT_BENCH_BURST_SET="NAME=value,…": settings to try a burst with (printed runs only). */
function overrides(value: string | undefined): Record<string, string> {
  if (!value) return {};
  return Object.fromEntries(value.split(',').map((pair) => pair.split('=', 2) as [string, string]));
}

/** A `sandbot worker` on the other engine, same instance and Redis; resolves once its host reports. */
async function startWorker(
  settings: Record<string, string>,
  redis: Redis,
  hosts: number,
): Promise<ChildProcess> {
  const main = new URL('../src/cli/main.js', import.meta.url).pathname;
  const child = spawn(process.execPath, [main, 'worker'], {
    env: upEnvironment(settings),
    stdio: 'ignore',
  });
  const instance = settings.SANDBOT_INSTANCE as string;
  await until(
    'the second host reporting',
    async () => ((await readHosts(redis, instance)).reports.length >= hosts ? true : undefined),
    60_000,
    100,
  );
  return child;
}

/** Sends the burst through `url`; each conversation's reply stream is open before any POST. */
async function burst(url: string, tag: string, n: number): Promise<{ samples: number[]; wallMs: number }> {
  const abort = new AbortController();
  try {
    const lanes = Array.from({ length: n }, (_, i) => `burst-${tag}-${i}`);
    const streams = await mapLimit(lanes, 20, (lane) => replyStream(url, lane, abort.signal));
    const began = performance.now();
    let last = began;
    const samples = await mapLimit(lanes, n, async (lane) => {
      const stream = streams[lanes.indexOf(lane)] as Awaited<ReturnType<typeof replyStream>>;
      const sent = performance.now();
      const answered = stream.next();
      const response = await fetch(`${url}/api/messages`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ conversation: lane, user: `bench-${lane}`, text: 'hello' }),
      });
      if (response.status !== 202) throw new Error(`bench: POST /api/messages answered ${response.status}`);
      await withTimeout(answered, 180_000, `the reply of ${lane}`);
      last = Math.max(last, performance.now());
      return performance.now() - sent;
    });
    return { samples, wallMs: last - began };
  } finally {
    abort.abort();
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`bench: ${what} did not come within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** One burst on a fresh instance: one host, or two when `second` is given; with a warm pool of `pool`. */
async function oneBurst(
  base: Record<string, string>,
  redis: Redis,
  second: ExtraEngine | undefined,
  n: number,
  pool?: number,
): Promise<BurstRun> {
  const instance = `bench-burst-${randomBytes(3).toString('hex')}`;
  const disks = [
    mkdtempSync(join(tmpdir(), 'sandbot-burst-disk-')),
    mkdtempSync(join(tmpdir(), 'sandbot-burst-disk-')),
  ];
  const settings = {
    ...base,
    ...(pool ? poolSettings(pool, n) : {}),
    SANDBOT_INSTANCE: instance,
    SANDBOX_DISK_DIR: disks[0] as string,
  };
  const secondSettings = second
    ? { ...settings, DOCKER_HOST: second.host, SANDBOX_DISK_DIR: disks[1] as string }
    : undefined;
  const up = await startUp({ ...settings, SANDBOT_HTTP_PORT: String(await freePort()) }, redis);
  let worker: ChildProcess | undefined;
  try {
    if (secondSettings) worker = await startWorker(secondSettings, redis, 2);
    const filled = pool
      ? await fillPool(redis, instance, pool, () => driverFor(settings).listPool())
      : undefined;
    await sleep(3000); // both hosts' reports settle, start-up work is over
    const before = load();
    const ours = [up.pid, ...(worker?.pid ? [worker.pid] : [])];
    const cpuBefore = cpuNow(ours, []);
    const { samples, wallMs } = await burst(up.url, instance, n);
    const perHost = [];
    const containers: string[] = [];
    for (const s of [settings, ...(secondSettings ? [secondSettings] : [])]) {
      const listed = await driverFor(s).list();
      perHost.push(listed.length);
      containers.push(...listed.map((sandbox) => sandbox.containerId));
    }
    const cpu = cpuSpent(cpuBefore, cpuNow(ours, containers));
    const pooled = filled
      ? await afterBurst(redis, instance, filled, await driverFor(settings).list())
      : undefined;
    return { samples, wallMs, perHost, load: before, cpu, ...(pooled ? { pool: pooled } : {}) };
  } finally {
    worker?.kill('SIGTERM');
    await up.stop();
    if (worker && worker.exitCode === null) await new Promise((done) => worker?.once('exit', done));
    if (secondSettings) await cleanSandboxes(secondSettings);
    await cleanSandboxes(settings);
    await cleanInstance(parseConfig({ ...settings, SANDBOX_LAYER: 'container' }));
    for (const dir of disks) {
      unmountUnder(dir);
      rmSync(dir, { recursive: true, force: true });
    }
  }
}

/** A driver for listing and removing (which look at labels, not at the layer auto would choose). */
const driverFor = (settings: Record<string, string>) =>
  sandboxDriverFromConfig(parseConfig({ ...settings, SANDBOX_LAYER: 'container' }));

async function cleanSandboxes(settings: Record<string, string>): Promise<void> {
  const driver = driverFor(settings);
  await mapLimit(await driver.list(), 8, (s) => driver.remove(s.conversation, { wipe: true }));
  await mapLimit(await driver.listPool(), 8, (p) => driver.removePooled(p.name));
}

/** `runs` bursts on one host, then `runs` on two (a second engine started for them, removed after). */
export async function measureBursts(
  options: {
    redis: Redis;
    ollamaUrl: string;
    auditDir: string;
    runs: number;
    n?: number;
    /** Two-host bursts too (a second engine is started for them): this many (default: runs). */
    twoHosts?: boolean | number;
    /** A one-host burst under runc too. */
    runc?: boolean;
    /** One-host bursts served by a warm pool as large as the burst: this many (default 1). */
    pooled?: number;
  },
  log: (line: string) => void,
): Promise<BurstResults> {
  const n = options.n ?? BURST_SIZE;
  const base: Record<string, string> = {
    ...benchSettings({ instance: 'unset', ollamaUrl: options.ollamaUrl, auditDir: options.auditDir }),
    ...BURST_SETTINGS,
    ...overrides(process.env.SANDBOT_BENCH_BURST_SET),
  };
  // The product's default layer (auto), not the headline figures' runc.
  delete base.SANDBOX_LAYER;
  const results: BurstResults = {
    size: n,
    settings: BURST_SETTINGS,
    oneHost: [],
    twoHosts: [],
    runc: [],
    pooled: [],
    layer: await autoLayer(base),
  };
  for (let i = 0; i < options.runs; i++) {
    const run = await oneBurst(base, options.redis, undefined, n);
    results.oneHost.push(run);
    log(`  burst of ${n}, one host: ${describe(run)}`);
  }
  if (options.runc !== false) {
    const run = await oneBurst({ ...base, SANDBOX_LAYER: 'container' }, options.redis, undefined, n);
    results.runc.push(run);
    log(`  burst of ${n}, one host, runc: ${describe(run)}`);
  }
  for (let i = 0; i < (options.pooled ?? 1); i++) {
    const run = await oneBurst(base, options.redis, undefined, n, n);
    results.pooled.push(run);
    log(`  burst of ${n}, one host, warm pool of ${n}: ${describe(run)}`);
  }
  if (options.twoHosts === false) return results;
  const second = await startExtraEngine();
  try {
    const runs = typeof options.twoHosts === 'number' ? options.twoHosts : options.runs;
    for (let i = 0; i < runs; i++) {
      const run = await oneBurst(base, options.redis, second, n);
      results.twoHosts.push(run);
      log(`  burst of ${n}, two hosts: ${describe(run)}`);
    }
  } finally {
    await second.remove();
  }
  return results;
}

const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
export function describe(run: BurstRun): string {
  return `p50 ${s(median(run.samples))} · p99 ${s(percentile(run.samples, 99))} · wall ${s(run.wallMs)} (sandboxes per host ${run.perHost.join('+')}, load before ${run.load})${run.pool ? `; ${poolLine(run.pool)}` : ''}; ${cpuLine(run.cpu)}`;
}

/** "pool of 100: filled in …, idle …, served …, refilled in …" */
export function poolLine(pool: PoolBurst): string {
  const mb = (v: number) => (Number.isFinite(v) ? `${Math.round(v)} MiB` : 'n/a');
  return `pool of ${pool.size}: filled in ${s(pool.fillMs)}, idle RSS ${mb(pool.idleRssMb)} (${mb(pool.idleRssMb / pool.size)} each; cgroup memory with page cache ${mb(pool.idleUsageMb)}), served ${pool.served} of the burst, refilled in ${pool.refillMs === undefined ? 'not within 20 min' : s(pool.refillMs)}`;
}

/** "CPU s: dockerd 12.3, …" */
export function cpuLine(cpu: CpuUse): string {
  const parts = Object.entries(cpu).map(([k, v]) => `${k} ${Number.isFinite(v) ? v.toFixed(1) : 'n/a'}`);
  return `CPU seconds: ${parts.join(', ')}`;
}
