import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import type Dockerode from 'dockerode';
import { sandboxDriverFromConfig } from '../sandbox/host/driver/from-config.js';
import type { SandboxSession } from '../sandbox/host/driver/types.js';
import { MicroVm } from '../sandbox/host/vm/micro-vm.js';
import { parseConfig } from '../src/contracts/config/load.js';
import { webConversationId } from '../src/contracts/conversation/id.js';
import type { RuntimeToWorker } from '../src/contracts/protocol/agent.js';
import { latency, ms } from './stats.js';

/**
 * `npm run bench:microvm`: what the micro-VM layer costs on this machine: one boot to a ready engine,
 * new sandboxes' starts inside the guest, and a tool call's round trip over the attached stream (and
 * through `docker exec`). The guest must be built (`sandbot vm build`); it is stopped first, so the boot
 * is a cold one, and stopped again at the end. Writes bench/MICROVM.md.
 */
const STARTS = Number(process.env.BENCH_VM_STARTS ?? 3);
const TOOL_CALLS = Number(process.env.BENCH_VM_TOOL_CALLS ?? 20);
const RESULTS_FILE = new URL('../../bench/MICROVM.md', import.meta.url).pathname;
const LIMITS = { toolTimeoutMs: 120_000, toolOutputBytes: 16_384 };

const config = parseConfig({
  ...process.env,
  SANDBOX_LAYER: 'microvm',
  SANDBOT_INSTANCE: 'bench-vm',
  SANDBOT_VM_DIR: process.env.SANDBOT_VM_DIR ?? join(process.cwd(), 'data/vm'),
});

function nextLine<T extends RuntimeToWorker['type']>(session: SandboxSession, type: T, timeoutMs = 600_000) {
  return new Promise<{ at: number; line: Extract<RuntimeToWorker, { type: T }> }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${type} within ${timeoutMs} ms`)), timeoutMs);
    const off = session.onMessage((result) => {
      if (!result.ok || result.value.type !== type) return;
      clearTimeout(timer);
      off();
      resolve({ at: performance.now(), line: result.value as Extract<RuntimeToWorker, { type: T }> });
    });
  });
}

async function execRoundTrip(docker: Dockerode, container: string): Promise<number> {
  const began = performance.now();
  const exec = await docker
    .getContainer(container)
    .exec({ Cmd: ['true'], AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({ hijack: true, stdin: false });
  await new Promise<void>((resolve, reject) =>
    stream.on('end', resolve).on('close', resolve).on('error', reject).resume(),
  );
  return performance.now() - began;
}

const vm = new MicroVm(config, (line) => console.log(line));
const load = loadavg()
  .map((n) => n.toFixed(2))
  .join(' ');
await vm.down();
const up = await vm.up();
console.log(`boot to ready: ${up.bootSeconds?.toFixed(1)} s (${up.accel.accel})`);
const driver = sandboxDriverFromConfig(config, undefined, up.docker);
const starts: number[] = [];
const roundTrips: number[] = [];
const execs: number[] = [];
try {
  for (let i = 0; i < STARTS; i++) {
    const conversation = webConversationId(`bench-${i}`);
    const began = performance.now();
    const session = await driver.open(conversation);
    const ready = nextLine(session, 'ready');
    session.send({ type: 'hello' });
    await ready;
    starts.push(performance.now() - began);
    console.log(`sandbox ${i + 1}: ready after ${ms(starts.at(-1) ?? 0)}`);
    if (i === 0) {
      for (let n = -2; n < TOOL_CALLS; n++) {
        const finished = nextLine(session, 'tool_finished');
        const done = nextLine(session, 'turn_done');
        const sentAt = performance.now();
        session.send({ type: 'run', turnId: `bench-${n + 2}`, command: 'true', limits: LIMITS });
        const [f] = await Promise.all([finished, done]);
        if (n >= 0) roundTrips.push(f.at - sentAt);
      }
      const name = (await driver.list()).find((s) => s.conversation === conversation)?.name ?? '';
      for (let n = 0; n < Math.min(TOOL_CALLS, 10); n++) execs.push(await execRoundTrip(up.docker, name));
    }
    await session.close();
  }
} finally {
  for (const sandbox of await driver.list()) await driver.remove(sandbox.conversation, { wipe: true });
  await vm.down();
}

const table = [
  '# The micro-VM layer: what it costs',
  '',
  `\`npm run bench:microvm\` on ${new Date().toISOString().slice(0, 16).replace('T', ' ')}: ${up.accel.reason}.`,
  `Guest: ${config.SANDBOT_VM_CPUS} CPU, ${config.SANDBOT_VM_MEMORY_MB} MiB. Load before: ${load}.`,
  '',
  '| Figure | Result |',
  '| --- | --- |',
  `| boot: QEMU start → guest engine answers (TLS) | ${up.bootSeconds?.toFixed(1)} s |`,
  `| new sandbox: open → runtime answers | ${latency(starts)} |`,
  `| tool call \`true\` over the attached stream | ${latency(roundTrips)} |`,
  `| \`docker exec true\` in the guest | ${latency(execs)} |`,
  '',
].join('\n');
writeFileSync(RESULTS_FILE, table);
console.log(table);
