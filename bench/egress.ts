import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { createDocker } from '../sandbox/host/driver/docker-client.js';
import { sandboxDriverFromConfig } from '../sandbox/host/driver/from-config.js';
import type { SandboxSession } from '../sandbox/host/driver/types.js';
import { describePlan, layerPlan, namedLayer } from '../sandbox/host/layers/layer.js';
import { parseConfig } from '../src/contracts/config/load.js';
import { webConversationId } from '../src/contracts/conversation/id.js';
import { createLogger } from '../src/contracts/log/logger.js';
import { EgressService } from '../src/worker/egress/egress-service.js';
import { SANDBOX_IMAGE } from '../testkit/instance.js';
import { startOutsideHost } from '../testkit/outside-host.js';
import { REDIS_URL } from '../testkit/redis.js';
import { runOnSession } from '../testkit/session-run.js';
import { describeMachine } from './machine.js';
import { latency, median } from './stats.js';

/**
 * `npm run bench:egress`: what a granted sandbox's way out costs, by route: the internal egress network
 * (runc), the egress tunnel over the protocol stream on runc (the same runtime, to isolate the tunnel),
 * and the tunnel under gVisor (how grants are served there). Per route, from inside the sandbox with
 * curl through the egress proxy to a web server outside: a small request's time, and a 32 MiB
 * download's throughput. Writes bench/EGRESS.md.
 */
const SMALL = 30;
const DOWNLOADS = 5;
const DOWNLOAD_BYTES = 32 * 1024 * 1024;
const RESULTS_FILE = new URL('../../bench/EGRESS.md', import.meta.url).pathname;
const OUTSIDE = '198.51.100.30';
const ROUTES = [
  { name: 'internal network (bridge), runc', layer: 'container', route: 'bridge' },
  { name: 'egress tunnel, runc', layer: 'container', route: 'tunnel' },
  { name: 'egress tunnel, gVisor', layer: 'gvisor', route: 'tunnel' },
] as const;

interface RouteResult {
  name: string;
  plan: string;
  smallSeconds: number[];
  downloadSeconds: number[];
}

/** One shell command through the protocol (as a chat /run does); its output. */
const run = async (session: SandboxSession, command: string) =>
  (await runOnSession(session, command, { toolTimeoutMs: 300_000, toolOutputBytes: 65_536 })).output;

const seconds = (output: string) =>
  output
    .split('\n')
    .filter((l) => /^\d+\.\d+$/.test(l.trim()))
    .map(Number);

async function measureRoute(
  route: (typeof ROUTES)[number],
  instance: string,
  port: number,
  redis: Redis,
): Promise<RouteResult> {
  const config = parseConfig({
    SANDBOT_INSTANCE: `${instance}-${route.layer === 'gvisor' ? 'gv' : 'rc'}-${route.route}`,
    SANDBOT_REDIS_URL: REDIS_URL,
    SANDBOX_IMAGE,
    SANDBOX_LAYER: route.layer,
    SANDBOT_LOG_LEVEL: 'silent',
  });
  const egress = new EgressService({
    docker: createDocker(config.DOCKER_HOST),
    redis,
    instance: config.SANDBOT_INSTANCE,
    rules: [{ prefix: 'web:bench', grants: ['api.example.test:8080'] }],
    route: route.route,
    port: 0,
    maxBytes: 1024 * 1024 * 1024,
    maxSeconds: 600,
    logger: createLogger(config),
    lookup: async (host) => (host === 'api.example.test' ? [{ address: OUTSIDE, family: 4 }] : []),
  });
  const driver = sandboxDriverFromConfig(config);
  const conversation = webConversationId('bench');
  try {
    const network = await egress.networkFor(conversation);
    const session = await driver.open(conversation, { network });
    try {
      const url = `http://api.example.test:${port}`;
      await run(session, `curl -s -o /dev/null ${url}/warm-up`);
      const small = await run(
        session,
        `for i in $(seq ${SMALL}); do curl -s -o /dev/null -w '%{time_total}\\n' ${url}/small; done`,
      );
      const big = await run(
        session,
        `for i in $(seq ${DOWNLOADS}); do curl -s -o /dev/null -w '%{time_total}\\n' ${url}/big/${DOWNLOAD_BYTES}; done`,
      );
      return {
        name: route.name,
        plan: describePlan(layerPlan(namedLayer(config))),
        smallSeconds: seconds(small),
        downloadSeconds: seconds(big),
      };
    } finally {
      await session.close();
    }
  } finally {
    await driver.remove(conversation, { wipe: true }).catch(() => undefined);
    await egress.stop();
  }
}

async function main(): Promise<void> {
  const instance = `bench-eg-${randomBytes(2).toString('hex')}`;
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 3 });
  const docker = createDocker(undefined);
  const outside = await startOutsideHost(docker, {
    name: `sbx-bench-outside-${process.pid}`,
    subnet: '198.51.100.0/24',
    address: OUTSIDE,
  });
  try {
    const machine = await describeMachine(docker, redis);
    const results: RouteResult[] = [];
    for (const route of ROUTES) {
      console.log(`measuring: ${route.name}`);
      results.push(await measureRoute(route, instance, outside.port, redis));
    }
    const mbPerSecond = (s: number[]) => `${(DOWNLOAD_BYTES / 1e6 / median(s)).toFixed(1)} MB/s`;
    const markdown = [
      '# Egress: what a granted sandbox’s way out costs',
      '',
      `\`npm run bench:egress\` on ${new Date().toISOString().slice(0, 16).replace('T', ' ')}: ${machine.cpus} cores (${machine.cpuModel}), kernel ${machine.kernel}, Docker ${machine.docker}, commit ${machine.commit}. Load before: ${machine.load}.`,
      `From inside one sandbox, curl through the egress proxy to a web server in a container outside (its own bridge network): ${SMALL} small requests one after another, and ${DOWNLOADS} downloads of ${DOWNLOAD_BYTES / 1024 / 1024} MiB. One run; medians (p99 = the largest of ${SMALL}).`,
      '',
      '| Route | small request (curl time_total) | 32 MiB download, median |',
      '| --- | --- | --- |',
      ...results.map(
        (r) =>
          `| ${r.name} | ${latency(r.smallSeconds.map((s) => s * 1000))} | ${mbPerSecond(r.downloadSeconds)} (${median(r.downloadSeconds).toFixed(2)} s) |`,
      ),
      '',
      ...results.map((r) => `- ${r.name}: ${r.plan}`),
      '',
    ].join('\n');
    writeFileSync(RESULTS_FILE, markdown);
    console.log(`\n${markdown}`);
  } finally {
    await outside.stop();
    redis.disconnect();
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
  process.exit(1);
});
