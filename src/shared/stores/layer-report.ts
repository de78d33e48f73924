import type { Redis } from 'ioredis';
import { z } from 'zod';
import { instanceKeys } from '../../contracts/redis/keys.js';
import { type Check, type Probe, runProbe } from '../probe.js';

/**
 * What each live worker checked, kept in Redis so `/readyz` on any gateway reports it (the gateway runs
 * no engine client and no model client of its own): the sandbox layer it runs under, and whether the
 * container engine and Ollama answer it. Each worker rewrites its entry every REFRESH_MS; an entry older
 * than STALE_MS belongs to a worker that is gone (and the whole key expires when every worker is).
 */
const REFRESH_MS = 15_000;
const STALE_MS = 45_000;

export const WorkerLayer = z.object({
  layer: z.enum(['container', 'gvisor', 'microvm']),
  runtime: z.string().optional(),
  /** What the start-up check saw (runtime, how it ran). */
  detail: z.string(),
  /** What SANDBOX_LAYER said (auto: the worker chose the layer), and why this layer. */
  setting: z.enum(['auto', 'container', 'gvisor', 'microvm']).optional(),
  reason: z.string().max(500).optional(),
  /** How granted sandboxes reach the egress proxy (see EgressRoute). */
  egress: z.enum(['bridge', 'tunnel']).optional(),
  /** Whether the engine the worker's sandboxes live on (the micro-VM's, under microvm) answered its last ping. */
  engine: z.object({ ok: z.boolean(), detail: z.string().max(300) }).optional(),
  /** `/readyz` checks the worker ran (docker: the engine at DOCKER_HOST; ollama: the model server). */
  checks: z
    .record(z.string(), z.object({ ok: z.boolean(), detail: z.string().max(300).optional() }))
    .optional(),
  /** For `/readyz`'s security section: the strongest layer this host runs, and the engine's posture. */
  posture: z
    .object({
      strongest: z.enum(['container', 'gvisor', 'microvm']).optional(),
      engine: z.object({ version: z.string().max(100), userns: z.boolean() }).optional(),
    })
    .optional(),
  at: z.number(),
});
export type WorkerLayer = z.infer<typeof WorkerLayer>;

/** What a worker probes for its report: its sandboxes' engine, and named `/readyz` checks. */
export interface WorkerProbes {
  /** The engine the worker's sandboxes live on (the micro-VM's, under microvm). */
  engine?: () => Promise<unknown>;
  checks?: Record<string, Probe>;
}

/** Each probe's time limit in a report. */
const PROBE_TIMEOUT_MS = 2000;

export interface LayerPublisher {
  /** Settles once the first report is written (or failed to be). */
  first: Promise<void>;
  /** Stops reporting and removes the entry. */
  stop(): Promise<void>;
}

/** Publishes a worker's layer and probes' answers until stopped (which removes the entry). */
export function publishWorkerLayer(
  redis: Redis,
  instance: string,
  workerId: string,
  layer: Omit<WorkerLayer, 'at' | 'engine' | 'checks'>,
  probes: WorkerProbes = {},
): LayerPublisher {
  const write = async () => {
    const [engine, checks] = await Promise.all([
      probes.engine ? engineAnswer(probes.engine) : undefined,
      probes.checks ? runChecks(probes.checks) : undefined,
    ]);
    const entry = { ...layer, ...(engine ? { engine } : {}), ...(checks ? { checks } : {}), at: Date.now() };
    await redis
      .multi()
      .hset(instanceKeys(instance).layers, workerId, JSON.stringify(entry))
      .pexpire(instanceKeys(instance).layers, STALE_MS)
      .exec()
      .catch(() => undefined);
  };
  const first = write();
  const timer = setInterval(write, REFRESH_MS);
  timer.unref();
  return {
    first,
    async stop() {
      clearInterval(timer);
      await redis.hdel(instanceKeys(instance).layers, workerId).catch(() => undefined);
    },
  };
}

async function runChecks(probes: Record<string, Probe>): Promise<Record<string, Check>> {
  const entries = await Promise.all(
    Object.entries(probes).map(async ([name, probe]) => {
      const check = await runProbe(probe, PROBE_TIMEOUT_MS);
      return [name, check.detail ? { ...check, detail: check.detail.slice(0, 300) } : check] as const;
    }),
  );
  return Object.fromEntries(entries);
}

async function engineAnswer(ping: () => Promise<unknown>): Promise<{ ok: boolean; detail: string }> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('no answer within 5 s')), 5000);
  });
  try {
    await Promise.race([ping(), late]);
    return { ok: true, detail: 'answering' };
  } catch (error) {
    return { ok: false, detail: (error instanceof Error ? error.message : String(error)).slice(0, 300) };
  } finally {
    clearTimeout(timer);
  }
}

export async function readWorkerLayers(redis: Redis, instance: string): Promise<Map<string, WorkerLayer>> {
  const raw = await redis.hgetall(instanceKeys(instance).layers);
  const found = new Map<string, WorkerLayer>();
  for (const [worker, text] of Object.entries(raw)) {
    try {
      const parsed = WorkerLayer.safeParse(JSON.parse(text));
      if (parsed.success) found.set(worker, parsed.data);
    } catch {
      // Not ours to judge: an unreadable entry is left out.
    }
  }
  return found;
}

/**
 * The `/readyz` entry: the layers live workers run under, and whether the engine their sandboxes live
 * on answers (the micro-VM's engine is reachable by its worker alone, so the worker reports it). Not
 * ok only when live workers report and none of their engines answers: then no sandbox can start.
 */
export function layerReadiness(
  configured: string,
  workers: ReadonlyMap<string, WorkerLayer>,
  now: number,
): Check {
  const live = [...workers.values()].filter((w) => now - w.at <= STALE_MS);
  if (live.length === 0)
    return { ok: true, detail: `configured ${configured}; no worker has reported a layer yet` };
  const counts = new Map<string, number>();
  for (const w of live) {
    const engineDown = w.engine && !w.engine.ok ? `, its engine not answering (${w.engine.detail})` : '';
    const chosen = w.setting === 'auto' && w.reason ? `, chosen by SANDBOX_LAYER=auto: ${w.reason}` : '';
    const name = `${w.layer}${w.runtime ? ` (${w.runtime})` : ''}${w.egress === 'tunnel' ? ', egress tunnelled' : ''}${engineDown}${chosen}`;
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  const parts = [...counts].map(([name, n]) => `${name} on ${n} worker${n === 1 ? '' : 's'}`);
  return { ok: live.some((w) => w.engine?.ok !== false), detail: parts.join('; ') };
}

/** The `/readyz` checks workers run for the gateway (it has no engine or model client of its own). */
export const WORKER_CHECKS = ['docker', 'ollama'] as const;

/**
 * `/readyz`'s docker, ollama and layer entries from the live workers' reports: a check is ok when a
 * live worker's last run of it was. No live worker: not ready (no turn can run), saying so.
 */
export function workerReadiness(
  configured: string,
  workers: ReadonlyMap<string, WorkerLayer>,
  now: number,
): Record<(typeof WORKER_CHECKS)[number] | 'layer' | 'disk', Check> {
  const live = [...workers.values()].filter((w) => now - w.at <= STALE_MS);
  const checks = Object.fromEntries(
    WORKER_CHECKS.map((name) => {
      if (live.length === 0) {
        const detail = `no worker has reported in the last ${STALE_MS / 1000} s: start one (\`sandbot worker\` or \`sandbot up\`)`;
        return [name, { ok: false, detail }];
      }
      const answers = live.flatMap((w) => (w.checks?.[name] ? [w.checks[name]] : []));
      const chosen = answers.find((c) => c.ok) ?? answers[0];
      return [name, chosen ?? { ok: false, detail: `no live worker reports a ${name} check` }];
    }),
  ) as Record<(typeof WORKER_CHECKS)[number], Check>;
  return { ...checks, layer: layerReadiness(configured, workers, now), disk: diskReadiness(live) };
}

/**
 * `/readyz`'s disk entry: the live workers' verdicts on their sandboxes' disk caps (see
 * sandbox/host/driver/disk-cap.ts). Always ok: a worker without caps could not start unless the
 * operator turned them off (SANDBOX_WORKSPACE_MB=0), which is shown as the weakness it is.
 */
export function diskReadiness(live: readonly WorkerLayer[]): Check {
  const details = [...new Set(live.flatMap((w) => (w.checks?.disk?.detail ? [w.checks.disk.detail] : [])))];
  if (details.length === 0) return { ok: true, detail: 'no live worker reports its disk caps' };
  // A weakness first: one uncapped worker is what the operator must see.
  details.sort((a, b) => Number(b.startsWith('WEAKNESS')) - Number(a.startsWith('WEAKNESS')));
  return { ok: true, detail: details.join('; ').slice(0, 300) };
}
