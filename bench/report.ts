import { type BurstResults, medianOf, poolLine } from './burst.js';
import type { Footprint } from './footprint.js';
import type { IngestRow } from './ingest.js';
import type { LatencyResults } from './latency.js';
import type { Machine } from './machine.js';
import type { PoolResults } from './pool.js';
import { type DensityResults, TOOL_PAUSE_MS, type ToolCallResults, type TurnSteps } from './sandbox.js';
import { median, ms, percentile } from './stats.js';

export interface BenchResults {
  machine: Machine;
  command: string;
  date: string;
  settings: Record<string, string>;
  startup: { readyMs: number[]; consumingMs: number[]; idleRss: number; moduleLoadMs: number[] };
  footprint: Footprint;
  latency: LatencyResults;
  burst: BurstResults;
  pool: PoolResults;
  tools: ToolCallResults;
  turnSteps: TurnSteps;
  density: DensityResults;
  ingest: IngestRow;
  ingestScaling: IngestRow[];
  loadAfter: string;
  seconds: number;
}

type Verdict = 'met' | 'missed' | '—';
interface Row {
  figure: string;
  goal: string;
  result: string;
  verdict: Verdict;
}

/** Memory goals are read as decimal megabytes (10^6 bytes), the stricter reading. */
const mb = (bytes: number) => (Number.isFinite(bytes) ? `${(bytes / 1e6).toFixed(1)} MB` : 'n/a');
const check = (ok: boolean): Verdict => (ok ? 'met' : 'missed');
const lat = (s: number[]) => `p50 ${ms(median(s))} · p99 ${ms(percentile(s, 99))} (n=${s.length})`;
const RESERVE_BYTES = 1024 ** 3; // left for the OS, Redis and sandbot itself

/** Sandboxes the measured host could hold by memory, from the larger of the two per-sandbox estimates. */
export function extrapolate(d: DensityResults): { perSandbox: number; count: number } {
  const perSandbox = Math.max(
    median(d.cgroupBytes) + median(d.shimBytes.filter(Number.isFinite)),
    d.hostBytesPer,
  );
  return { perSandbox, count: Math.floor((d.availableBefore - RESERVE_BYTES) / perSandbox) };
}

export function headlineRows(r: BenchResults): Row[] {
  const { latency: l, tools: t, density: d } = r;
  const readyP50 = median(r.startup.readyMs);
  const warm50 = median(l.warm);
  const warm99 = percentile(l.warm, 99);
  const cold50 = median(l.cold);
  const fit = extrapolate(d);
  return [
    {
      figure: 'start to ready, `sandbot up` (spawn → /healthz 200)',
      goal: '< 1 s',
      result: lat(r.startup.readyMs),
      verdict: check(readyP50 < 1000),
    },
    {
      figure: 'loading the CLI alone (`sandbot --help`, spawn → exit; each command loads its own modules)',
      goal: '—',
      result: lat(r.startup.moduleLoadMs),
      verdict: '—',
    },
    {
      figure: 'start to worker consuming (BullMQ blocked on inbound)',
      goal: '—',
      result: lat(r.startup.consumingMs),
      verdict: '—',
    },
    {
      figure: 'idle RSS, gateway + worker (`up` process)',
      goal: '< 150 MB',
      result: mb(r.startup.idleRss),
      verdict: check(r.startup.idleRss < 150e6),
    },
    {
      figure: 'install footprint (node_modules of a production install)',
      goal: '< 150 MB',
      result: r.footprint.error
        ? `not measured: ${r.footprint.error}`
        : `${mb(r.footprint.bytes)} (${r.footprint.packages} packages)`,
      verdict: r.footprint.error ? '—' : check(r.footprint.bytes < 150e6),
    },
    {
      figure: 'message → agent sees it, warm conversation',
      goal: 'p50 < 20 ms, p99 < 100 ms',
      result: lat(l.warm),
      verdict: check(warm50 < 20 && warm99 < 100),
    },
    {
      figure: 'message → agent sees it, new conversation (cold)',
      goal: 'p50 < 500 ms',
      result: lat(l.cold),
      verdict: check(cold50 < 500),
    },
    {
      figure: 'message → agent sees it, 90 new conversations at once',
      goal: '—',
      result: lat(l.coldBurst),
      verdict: '—',
    },
    ...burstRows(r.burst),
    {
      figure: `message → agent sees it, new conversation, warm pool of ${r.pool.size}`,
      goal: 'p50 < 50 ms',
      result: `${lat(r.pool.samples)}, ${r.pool.served} of ${r.pool.samples.length} served by the pool`,
      verdict: check(median(r.pool.samples) < 50),
    },
    {
      figure: `tool call \`true\`, protocol round trip (run → tool_finished), calls ${TOOL_PAUSE_MS} ms apart`,
      goal: '< 5 ms',
      result: lat(t.pacedRoundTrip),
      verdict: check(median(t.pacedRoundTrip) < 5),
    },
    {
      figure: `tool call \`true\`, in sandbox (tool_started → tool_finished), calls ${TOOL_PAUSE_MS} ms apart`,
      goal: '< 5 ms',
      result: lat(t.pacedInSandbox),
      verdict: check(median(t.pacedInSandbox) < 5),
    },
    {
      figure: 'tool call `true`, protocol round trip, calls back to back',
      goal: '< 5 ms',
      result: lat(t.roundTrip),
      verdict: check(median(t.roundTrip) < 5),
    },
    {
      figure: 'tool call `true`, in sandbox, calls back to back',
      goal: '< 5 ms',
      result: lat(t.inSandbox),
      verdict: check(median(t.inSandbox) < 5),
    },
    {
      figure: 'same with `docker exec` (create + start + end + inspect)',
      goal: 'comparison',
      result: lat(t.dockerExec),
      verdict: '—',
    },
    {
      figure: 'tool step in a real turn (model asks `bash true` → next model request)',
      goal: '—',
      result: lat(l.toolSteps),
      verdict: '—',
    },
    { figure: 'sandbox open → runtime ready (4 at a time)', goal: '—', result: lat(d.openMs), verdict: '—' },
    {
      figure: 'idle sandboxes one host holds (by memory, extrapolated)',
      goal: '≥ 200',
      result: `≈${fit.count} (from ${d.count} measured; ${mb(fit.perSandbox)} each)`,
      verdict: check(fit.count >= 200),
    },
    {
      figure: 'queue ingest, InboundQueue.submit on real Redis',
      goal: '≥ 2,000 msg/s',
      result: `${Math.round(r.ingest.perSecond)} msg/s (${r.ingest.messages} msgs, ${r.ingest.conversations} conversations, 50 in flight)`,
      verdict: check(r.ingest.perSecond >= 2000),
    },
  ];
}

const sec = (value: number) => `${(value / 1000).toFixed(1)} s`;

/** The bursts' rows: medians over the runs of each run's p50, p99 and wall time. */
export function burstRows(b: BurstResults): Row[] {
  const one = medianOf(b.oneHost);
  const figures = (m: ReturnType<typeof medianOf>, runs: number) =>
    `p50 ${ms(m.p50)} · p99 ${ms(m.p99)} · wall ${sec(m.wallMs)} (median of ${runs} bursts)`;
  const rows: Row[] = [
    {
      figure: `message → reply, ${b.size} new conversations at once, one host (${b.layer}, disk caps on)`,
      goal: 'p50 < 5 s, p99 < 15 s',
      result: figures(one, b.oneHost.length),
      verdict: check(one.p50 < 5000 && one.p99 < 15_000),
    },
  ];
  if (b.twoHosts.length > 0) {
    const two = medianOf(b.twoHosts);
    const split = b.twoHosts.map((run) => run.perHost.join('+')).join(', ');
    rows.push({
      figure: `same, two hosts (a second engine and worker on the same 2 cores)`,
      goal: 'wall ≈ half of one host’s',
      result: `${figures(two, b.twoHosts.length)}; wall ${(two.wallMs / one.wallMs).toFixed(2)}× one host’s; sandboxes per host ${split}`,
      verdict: check(two.wallMs <= 0.6 * one.wallMs),
    });
  }
  if (b.pooled.length > 0) {
    const pooled = medianOf(b.pooled);
    const pool = b.pooled[0]?.pool;
    rows.push({
      figure: `same, one host, with a warm pool of ${b.size} filled before (\`SANDBOX_WARM_POOL=${b.size}\`, \`SANDBOX_MAX_LIVE=${2 * b.size}\`)`,
      goal: 'p50 < 5 s, p99 < 15 s',
      result: `${figures(pooled, b.pooled.length)}${pool ? `; ${poolLine(pool)}` : ''}`,
      verdict: check(pooled.p50 < 5000 && pooled.p99 < 15_000),
    });
  }
  if (b.runc.length > 0) {
    rows.push({
      figure: 'same, one host, runc (SANDBOX_LAYER=container), for comparison',
      goal: '—',
      result: figures(medianOf(b.runc), b.runc.length),
      verdict: '—',
    });
  }
  return rows;
}

export function scalingRows(r: BenchResults): string[][] {
  return r.latency.scaling.map((row) => {
    const ingest = r.ingestScaling.find((i) => i.conversations === row.conversations);
    return [
      String(row.conversations),
      ms(median(row.samples)),
      ms(percentile(row.samples, 99)),
      String(row.samples.length),
      (row.samples.length / row.seconds).toFixed(1),
      mb(row.rss),
      ingest ? `${Math.round(ingest.perSecond)} msg/s` : 'n/a',
    ];
  });
}

export function table(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

export function headlineTable(r: BenchResults): string {
  return table(
    ['Figure', 'Goal', 'Result', ''],
    headlineRows(r).map((x) => [x.figure, x.goal, x.result, x.verdict]),
  );
}

export const SCALING_HEADER = [
  'Concurrent conversations',
  'msg → agent p50',
  'p99',
  'messages',
  'turns/s',
  '`up` RSS after',
  'ingest',
];
