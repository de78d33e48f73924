import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { createDocker } from '../sandbox/host/driver/docker-client.js';
import { sandboxDriverFromConfig } from '../sandbox/host/driver/from-config.js';
import { describePlan, layerPlan, namedLayer } from '../sandbox/host/layers/layer.js';
import { checkLayer } from '../sandbox/host/layers/layer-check.js';
import { parseConfig } from '../src/contracts/config/load.js';
import type { Config } from '../src/contracts/config/schema.js';
import { startFakeOllama } from '../testkit/fakes/fake-ollama.js';
import { cleanInstance } from '../testkit/instance.js';
import { REDIS_URL } from '../testkit/redis.js';
import { describeMachine, type Machine } from './machine.js';
import { type DensityResults, measureDensity, measureToolCalls, type ToolCallResults } from './sandbox.js';
import { latency, mapLimit, median, mib, ms } from './stats.js';
import { benchSettings, freePort, startUp } from './system.js';

/**
 * `npm run bench:layers`: what each sandbox layer this machine can run costs, on the real engine:
 * `sandbot up` start to ready (the worker checks its layer first), a new sandbox's start (create,
 * start, the runtime's first answer), a tool call's round trip over the attached stream, and the
 * memory of an idle sandbox. Writes bench/LAYERS.md. The micro-VM layer is measured by its own code.
 */
const LAYERS = ['container', 'gvisor'] as const;
const STARTS = 3;
const IDLE = 10;
const TOOL_CALLS = 30;
const RESULTS_FILE = new URL('../../bench/LAYERS.md', import.meta.url).pathname;

interface LayerResult {
  layer: string;
  plan: string;
  skipped?: string;
  readyMs?: number[];
  consumingMs?: number[];
  tools?: ToolCallResults;
  density?: DensityResults;
}

const began = performance.now();
const log = (line: string) =>
  console.log(`[${((performance.now() - began) / 1000).toFixed(0).padStart(3)} s] ${line}`);

async function clean(config: Config): Promise<void> {
  const driver = sandboxDriverFromConfig(config);
  await mapLimit(await driver.list(), 8, (s) => driver.remove(s.conversation, { wipe: true }));
  await cleanInstance(config);
}

async function measureLayer(layer: string, base: Record<string, string>, redis: Redis): Promise<LayerResult> {
  const settings = { ...base, SANDBOX_LAYER: layer, SANDBOT_INSTANCE: `${base.SANDBOT_INSTANCE}-${layer}` };
  const config = parseConfig(settings);
  const plan = layerPlan(namedLayer(config));
  const docker = createDocker(config.DOCKER_HOST);
  const verdict = await checkLayer(plan, {
    docker,
    image: config.SANDBOX_IMAGE,
    instance: config.SANDBOT_INSTANCE,
  });
  if (!verdict.ok) return { layer, plan: describePlan(plan), skipped: verdict.reason };
  try {
    log(`${layer}: start to ready of \`sandbot up\` …`);
    const readyMs: number[] = [];
    const consumingMs: number[] = [];
    for (let i = 0; i < STARTS; i++) {
      const up = await startUp({ ...settings, SANDBOT_HTTP_PORT: String(await freePort()) }, redis);
      readyMs.push(up.readyMs);
      consumingMs.push(up.consumingMs);
      await up.stop();
    }
    log(`${layer}: tool calls …`);
    const tools = await measureToolCalls(config, docker, TOOL_CALLS);
    await clean(config);
    log(`${layer}: ${IDLE} idle sandboxes …`);
    const density = await measureDensity(config, docker, IDLE);
    return { layer, plan: describePlan(plan), readyMs, consumingMs, tools, density };
  } finally {
    await clean(config);
  }
}

function layersMarkdown(results: LayerResult[], machine: Machine, date: string): string {
  const row = (r: LayerResult): string[] => {
    if (r.skipped || !r.readyMs || !r.consumingMs || !r.tools || !r.density) {
      return [r.layer, `not measured: ${r.skipped ?? 'no result'}`, '', '', '', ''];
    }
    return [
      r.layer,
      `${ms(median(r.readyMs))} / ${ms(median(r.consumingMs))}`,
      latency(r.density.openMs),
      latency(r.tools.roundTrip),
      latency(r.tools.dockerExec),
      mib(median(r.density.cgroupBytes)),
    ];
  };
  const header = [
    'Layer',
    '`sandbot up`: healthz / consuming (median)',
    'new sandbox: open → runtime answers',
    'tool call `true` (attached stream)',
    '`docker exec true`',
    'idle sandbox: cgroup memory (median)',
  ];
  const lines = [header, header.map(() => '---'), ...results.map(row)].map(
    (cells) => `| ${cells.join(' | ')} |`,
  );
  return [
    '# Sandbox layers: what each costs',
    '',
    `\`npm run bench:layers\` on ${date}: ${machine.cpus} cores (${machine.cpuModel}), ${machine.memory}, kernel ${machine.kernel}, Docker ${machine.docker}, commit ${machine.commit}.`,
    `${STARTS} starts, ${TOOL_CALLS} tool calls and ${IDLE} idle sandboxes per layer; a fake Ollama, so no model time. Load before: ${machine.load}.`,
    '',
    ...lines,
    '',
    ...results.map((r) => `- ${r.plan}`),
    '',
    'Under gVisor the cgroup memory includes gVisor’s own kernel (sentry and gofer), which runs in the',
    'sandbox’s cgroup; `sandbot up` waits for the worker’s layer check (a probe container) before it consumes.',
    '',
  ].join('\n');
}

async function main(): Promise<void> {
  const instance = `bench-layers-${randomBytes(3).toString('hex')}`;
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 3 });
  const ollama = await startFakeOllama({ models: ['qwen2.5:7b'] });
  const auditDir = mkdtempSync(join(tmpdir(), 'sandbot-bench-layers-'));
  const base: Record<string, string> = {
    ...benchSettings({ instance, ollamaUrl: ollama.url, auditDir }),
    SANDBOX_MAX_LIVE: '50',
  };
  try {
    const machine = await describeMachine(createDocker(undefined), redis);
    const results: LayerResult[] = [];
    for (const layer of LAYERS) results.push(await measureLayer(layer, base, redis));
    const markdown = layersMarkdown(
      results,
      machine,
      new Date().toISOString().slice(0, 16).replace('T', ' '),
    );
    writeFileSync(RESULTS_FILE, markdown);
    console.log(`\n${markdown}`);
    log('written: bench/LAYERS.md');
  } finally {
    await ollama.close();
    redis.disconnect();
    rmSync(auditDir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
  process.exit(1);
});
