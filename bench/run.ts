import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { createDocker } from '../sandbox/host/driver/docker-client.js';
import { sandboxDriverFromConfig } from '../sandbox/host/driver/from-config.js';
import { parseConfig } from '../src/contracts/config/load.js';
import type { Config } from '../src/contracts/config/schema.js';
import { cleanInstance } from '../testkit/instance.js';
import { REDIS_URL } from '../testkit/redis.js';
import { BURST_SIZE, measureBursts } from './burst.js';
import { measureFootprint } from './footprint.js';
import { type IngestRow, measureIngest } from './ingest.js';
import { MessageProbe, measureLatencies } from './latency.js';
import { describeMachine, rssBytes } from './machine.js';
import { benchParts, runParts } from './partial.js';
import { measurePool } from './pool.js';
import { type BenchResults, headlineTable, SCALING_HEADER, scalingRows, table } from './report.js';
import { resultsMarkdown } from './results-md.js';
import { measureDensity, measureToolCalls, measureTurnSteps } from './sandbox.js';
import { mapLimit, sleep } from './stats.js';
import { benchSettings, freePort, measureModuleLoad, startUp, type UpProcess } from './system.js';

/**
 * `npm run bench`: drives the real system (a `sandbot up` child process, Redis, the Docker engine,
 * a fake Ollama) and writes bench/RESULTS.md. Never run as a test: timing belongs here.
 */
const STARTS = 5;
/** Bursts of each kind (the medians are reported: the machine is shared, one burst is noisy). */
const BURST_RUNS = 3;
const IDLE_SANDBOXES = 60;
const RESULTS_FILE = new URL('../../bench/RESULTS.md', import.meta.url).pathname;

const started = performance.now();
/** Progress on stdout, with the seconds since the start, so slow phases show. */
const log = (line: string) =>
  console.log(`[${((performance.now() - started) / 1000).toFixed(0).padStart(3)} s] ${line}`);

/** Removes the instance's sandboxes 8 at a time (a hundred one by one takes long), then the rest. */
async function clean(config: Config): Promise<void> {
  const driver = sandboxDriverFromConfig(config);
  await mapLimit(await driver.list(), 8, (s) => driver.remove(s.conversation, { wipe: true }));
  await mapLimit(await driver.listPool(), 8, (p) => driver.removePooled(p.name));
  await cleanInstance(config);
}

async function main(): Promise<void> {
  const instance = `bench-${randomBytes(3).toString('hex')}`;
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 3 });
  const docker = createDocker(undefined);
  const machine = await describeMachine(docker, redis);
  log(`sandbot bench: instance ${instance}, ${machine.cpus} cores, ${machine.memory}, load ${machine.load}`);
  const probe = await MessageProbe.start(redis, instance);
  const auditDir = mkdtempSync(join(tmpdir(), 'sandbot-bench-audit-'));
  const settings: Record<string, string> = {
    ...benchSettings({ instance, ollamaUrl: probe.ollama.url, auditDir }),
    SANDBOX_MAX_LIVE: '150',
  };
  const config = parseConfig(settings);
  let up: UpProcess | undefined;
  try {
    const parts = benchParts(process.env.SANDBOT_BENCH_ONLY);
    if (parts) return await runParts(parts, { settings, redis, probe, starts: STARTS }, log);
    log('start to ready of `sandbot up` …');
    const moduleLoadMs = await measureModuleLoad();
    const readyMs: number[] = [];
    const consumingMs: number[] = [];
    for (let i = 0; i < STARTS; i++) {
      await up?.stop();
      up = await startUp({ ...settings, SANDBOT_HTTP_PORT: String(await freePort()) }, redis);
      readyMs.push(up.readyMs);
      consumingMs.push(up.consumingMs);
    }
    if (!up) throw new Error('bench: sandbot up did not start');
    await sleep(5000);
    const idleRss = rssBytes(up.pid);

    log('message → the agent sees it …');
    const latency = await measureLatencies(probe, up.url, up.pid, log);
    await up.stop();
    up = undefined;

    // On an engine as empty as the cold figure's (not with the 100 conversations above still running).
    log('removing the sandboxes so far …');
    await clean(config);
    log('new conversations with a warm pool …');
    const pool = await measurePool(probe, settings, redis, log);

    log('tool calls …');
    const tools = await measureToolCalls(config, docker);
    const turnSteps = await measureTurnSteps(config);
    log('removing the sandboxes so far …');
    await clean(config);

    log(`${IDLE_SANDBOXES} idle sandboxes …`);
    const density = await measureDensity(config, docker, IDLE_SANDBOXES);
    await clean(config);

    log(`bursts of ${BURST_SIZE} new conversations (default layer, caps on) …`);
    const burst = await measureBursts(
      { redis, ollamaUrl: probe.ollama.url, auditDir, runs: BURST_RUNS, twoHosts: 2 },
      log,
    );

    log('queue ingest …');
    const ingest = await measureIngest(REDIS_URL, `${instance}-ingest`, 5000, 500);
    const ingestScaling: IngestRow[] = [];
    for (const conversations of [1, 10, 50, 100]) {
      ingestScaling.push(await measureIngest(REDIS_URL, `${instance}-ingest`, 5000, conversations));
    }

    log('install footprint (production npm install) …');
    const footprint = await measureFootprint();

    const results: BenchResults = {
      machine,
      command: 'npm run bench',
      date: new Date().toISOString().slice(0, 16).replace('T', ' '),
      settings: Object.fromEntries(
        ['SANDBOX_MAX_LIVE', 'SANDBOT_LOG_LEVEL'].map((k) => [k, settings[k] ?? '']),
      ),
      startup: { readyMs, consumingMs, idleRss, moduleLoadMs },
      footprint,
      latency,
      burst,
      pool,
      tools,
      turnSteps,
      density,
      ingest,
      ingestScaling,
      loadAfter: loadavg()
        .map((l) => l.toFixed(2))
        .join(' '),
      seconds: (performance.now() - started) / 1000,
    };
    writeFileSync(RESULTS_FILE, resultsMarkdown(results));
    console.log(`\n${headlineTable(results)}\n\n${table(SCALING_HEADER, scalingRows(results))}\n`);
    log(`written: bench/RESULTS.md (${Math.round(results.seconds)} s)`);
  } finally {
    await up?.stop();
    await probe.close();
    await clean(config).catch((error: unknown) => log(`cleanup failed: ${String(error)}`));
    rmSync(auditDir, { recursive: true, force: true });
    redis.disconnect();
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
  process.exit(1);
});
