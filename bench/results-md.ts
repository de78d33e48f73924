import { type BurstResults, cpuLine } from './burst.js';
import {
  type BenchResults,
  extrapolate,
  headlineTable,
  SCALING_HEADER,
  scalingRows,
  table,
} from './report.js';
import { TOOL_PAUSE_MS } from './sandbox.js';
import { median, ms, percentile } from './stats.js';

const mb = (bytes: number) => (Number.isFinite(bytes) ? `${(bytes / 1e6).toFixed(1)} MB` : 'n/a');

const secs = (value: number) => `${(value / 1000).toFixed(1)} s`;

function burstMethod(r: BenchResults): string {
  const b = r.burst;
  const runs = (label: string, list: BurstResults['oneHost']) =>
    list
      .map(
        (run) =>
          `${label}: p50 ${secs(median(run.samples))}, p99 ${secs(percentile(run.samples, 99))}, wall ${secs(run.wallMs)} (load before ${run.load}; ${cpuLine(run.cpu)})`,
      )
      .join('; ');
  const set = Object.entries(b.settings)
    .map(([k, v]) => `\`${k}=${v}\``)
    .join(', ');
  return `${b.size} new web conversations POSTed at once to a fresh \`sandbot up\` (fresh instance, no sandbox on the engine), each timed from just before its POST to its \`reply\` event on the conversation's event stream (opened before the burst), the fake model answering at once; "wall" is the first POST to the last reply. Settings: the product's defaults (\`SANDBOX_LAYER=auto\`, here ${b.layer}; disk caps on, \`SANDBOX_WORKSPACE_MB=2048\`, \`SANDBOX_SESSION_MB=64\`; \`SANDBOT_WORKER_CONCURRENCY\` at its default), except ${set || 'nothing'} (100 conversations live at once on one host, as the issue has it; the default stops idle sandboxes past 50). Two hosts: a second dockerd on this machine (own data root and socket, \`--bridge=none --iptables=false\`, the same runtimes) with a \`sandbot worker\` on it, same instance and Redis; new conversations are placed by the hosts' free slots. Both share the machine's 2 cores, so the second host adds no CPU. CPU seconds are what each part spent during the burst (/proc and the sandboxes' cgroups, bench/cpu-use.ts; "machine, all" includes other work on the machine). Warm pool: one host with \`SANDBOX_WARM_POOL=${b.size}\` and \`SANDBOX_MAX_LIVE=${2 * b.size}\` (room for the pool and the burst's sandboxes), the burst sent once the pool was full; the pool's idle memory is its sandboxes' cgroups (RSS, and all charged with page cache), its refill time from the last reply until it is full again. Runs: ${runs('one host', b.oneHost)}; ${runs('two hosts', b.twoHosts)}; ${runs('runc', b.runc)}; ${runs('warm pool', b.pooled)}.`;
}

/** bench/RESULTS.md: the figures, the machine, the command, and how each figure was taken. */
export function resultsMarkdown(r: BenchResults): string {
  const m = r.machine;
  const d = r.density;
  const fit = extrapolate(d);
  const settings = Object.entries(r.settings)
    .map(([k, v]) => `\`${k}=${v}\``)
    .join(', ');
  const largest = r.footprint.largest.map((p) => `${p.name} ${mb(p.bytes)}`).join(', ');
  return `# sandbot benchmarks

Produced by \`${r.command}\` on ${r.date} (commit ${m.commit}), one run, ${Math.round(r.seconds)} s in all.
Medians and p99s are over the samples of that one run (nearest rank: with 50 samples p99 is the largest).
"MB" is 10^6 bytes.

## Machine

- CPU: ${m.cpus} cores (\`nproc\`), ${m.cpuModel}
- Memory: ${m.memory}
- Kernel: ${m.kernel}
- Docker engine: ${m.docker}
- Redis: ${m.redis}, on 127.0.0.1
- Node.js: ${m.node}
- Load average at start: ${m.load}; at the end: ${r.loadAfter} (the bench's own load generator and the
  fake Ollama run on the same 2 cores; other work on the machine, if any, is in these figures too)

## Headline figures

${headlineTable(r)}

## How the figures grow from 1 to 100 concurrent conversations

Each conversation sends a message, waits until the model has seen it and the turn is over, then sends
the next (closed loop). The sandboxes are warm (opened beforehand). "turns/s" is messages over the
wall time of that level. Ingest spreads 5,000 messages over that many conversations, 50 submits in flight.

${table(SCALING_HEADER, scalingRows(r))}

## Where a warm turn's time goes

Before the runtime gets a warm turn, the worker makes no call to the engine:
- the attach connection to the sandbox is kept open between turns (a lease on it per turn; lines sent
  between two turns are dropped, and the connection goes when the container stops or must be remade);
- the audit log diffs the turn against the snapshot of /workspace the previous turn ended with, while
  that still holds: same container, no other turn since on any worker (each turn replaces a mark in
  Redis), and the runtime reaps the agent's leftover processes before it reports the turn done;
- the canary is planted again only when that snapshot shows it missing or not as planted (content,
  file mode, its folder's mode); a new or recreated container gets it as before.

After the reply it takes one snapshot of /workspace (the turn's file changes, kept for the next turn)
and reads /workspace/outbox only when those changes touch it. What is left before the model sees a warm
message is Redis round trips (message store, queue, lease, quarantine, skills, network grants, canary
token, workspace mark), the runtime loading its history, and the HTTP calls at either end. Each engine
call, timed alone on a running sandbox (${r.turnSteps['open, new attach (inspect + attach)'].length} times each; claims
${r.turnSteps['claim a pooled sandbox (new conversation, warm pool)'].length} times):

${table(
  ['Engine call', 'p50', 'p99'],
  Object.entries(r.turnSteps).map(([step, samples]) => [
    step,
    ms(median(samples)),
    ms(percentile(samples, 99)),
  ]),
)}

## Settings of the \`sandbot up\` under test

${settings}. Everything else is the default (\`SANDBOX_MEMORY_MB=512\`, \`SANDBOX_CPUS=1\`), except the layer:
runc (\`SANDBOX_LAYER=container\`) for the figures above the bursts (bench/LAYERS.md compares the layers),
the default layer for the bursts. \`SANDBOX_MAX_LIVE\` is raised from its default (50) so that 100
conversations can be live at once; the concurrency is the default (16; it was 4, when waiting for a
free slot dominated).

## How each figure was taken

- **Start to ready**: \`node dist/src/cli/main.js up\` spawned ${r.startup.readyMs.length} times in a row
  (fresh instance, Redis and engine already running), \`GET /healthz\` polled every 5 ms. "Worker
  consuming": the worker's BullMQ connection shows \`cmd=bzpopmin\` in Redis \`CLIENT LIST\`.
- **Idle RSS**: VmRSS of that process (gateway and worker together, as \`sandbot up\` runs them) from
  /proc, 5 s after start, before any message. After 100 live conversations it is in the scaling table.
- **Install footprint**: \`${r.footprint.method} --prefer-offline\` from package.json and package-lock.json
  in an empty directory (npm's cache was warm; took ${r.footprint.seconds.toFixed(0)} s), \`du -sk node_modules\`.${
    r.footprint.lockRefused
      ? ' (`npm ci` refused package-lock.json as out of sync with package.json, so `npm install` was used.)'
      : ''
  }
  Largest packages: ${largest || 'n/a'}.
- **Message → agent sees it**: the bench POSTs \`/api/messages\` and takes the time just before the
  request; the fake Ollama (testkit/fakes/fake-ollama.ts, in the bench process) takes the time when the
  \`/api/chat\` request carrying that message arrives. The path covers the gateway, Redis, the worker's
  lease and turn, the leased attach connection, the runtime loading its history and asking for the
  model (see above for what is no longer on this path). The model answers at once. Cold:
  ${r.latency.cold.length} new conversations one after another (container and volumes created and started).
- **Warm pool**: a second \`sandbot up\` with \`SANDBOX_WARM_POOL=${r.pool.size}\`, on an engine emptied of the
  sandboxes above (as for the cold figure); ${r.pool.samples.length} new conversations one after another, each
  sent once the pool was full again (the pool's owner marks in
  Redis count its ready sandboxes). ${r.pool.served} of them were served by the pool (a claim: bind volumes
  named for the conversation onto the pooled volumes, a rename, an attach; canary and snapshot were
  made in the pool). After each such turn the pool was full again within p50
  ${ms(median(r.pool.refillMs))} (background work; a new pooled sandbox takes about as long as a cold start).
- **Tool call**: the bench opens a sandbox with the worker's driver (\`sandboxDriverFromConfig(config).open\`)
  and sends the runtime \`{type:'run', command:'true'}\` over the attached stdin, ${r.tools.roundTrip.length}
  times after 5 warm-ups, first back to back, then each ${TOOL_PAUSE_MS} ms after the last ended (in a turn a
  model answer always comes between two calls): round trip from send to \`tool_finished\`, and
  \`tool_started\` → \`tool_finished\` as the worker's side receives them. The runtime starts the next
  call's bash while it waits (blocked reading its command), so a call costs a write instead of a fork and
  an exec (≈2.5 ms of a 50 MB node process on this VM); back to back, the next call can arrive while that
  shell is still being started. \`docker exec\` is the same \`true\` through dockerode: exec create,
  start (hijacked), stream end, inspect for the exit code. "Tool step in a real turn": the fake model
  answers a message with a \`bash true\` call; the time from that answer to the next model request
  (carrying the tool result) is the worker → runtime → tool → runtime → worker path in a real turn.
- **Idle sandboxes**: ${d.count} sandboxes opened (4 at a time) until their runtime answered, then left
  idle 10 s. Per sandbox: container cgroup memory as \`docker stats\` counts it (usage − inactive file)
  median ${mb(median(d.cgroupBytes))}; the engine's containerd-shim per container median
  ${mb(median(d.shimBytes.filter(Number.isFinite)))} RSS (its shared pages counted in full); host
  MemAvailable fell by ${mb(d.hostBytesPer)} per sandbox. All ${d.count} idle together used
  ${d.idleCpuPercent.toFixed(2)} % of one core (≈${((d.idleCpuPercent * 200) / d.count).toFixed(0)} % for 200). **Extrapolation**, not a measurement: with
  ${mb(d.availableBefore)} available at the start, less 1 GiB kept for the OS, Redis and sandbot, and the
  larger estimate (${mb(fit.perSandbox)} per sandbox), memory allows ≈${fit.count} idle sandboxes. Beyond
  ${d.count} it was not tried; the engine's own per-container cost and \`SANDBOX_MAX_LIVE\` (default 50 per
  worker) would be the next limits.
- **Bursts**: ${burstMethod(r)}
- **Queue ingest**: \`InboundQueue.submit\` (records the message in its conversation's store with its
  sequence number, then adds the BullMQ job) from the bench process on a connection made like the
  gateway's, no worker consuming, own instance, keys dropped afterwards.
`;
}
