import { readdirSync, readFileSync } from 'node:fs';
import type Dockerode from 'dockerode';
import type { PooledSandbox } from '../sandbox/host/driver/docker-pool.js';
import { sandboxNames } from '../sandbox/host/driver/docker-spec.js';
import { sandboxDriverFromConfig } from '../sandbox/host/driver/from-config.js';
import type { SandboxSession } from '../sandbox/host/driver/types.js';
import type { Config } from '../src/contracts/config/schema.js';
import { webConversationId } from '../src/contracts/conversation/id.js';
import type { RuntimeToWorker } from '../src/contracts/protocol/agent.js';
import { availableBytes, rssBytes } from './machine.js';
import { mapLimit, sleep } from './stats.js';

const LIMITS = { toolTimeoutMs: 10_000, toolOutputBytes: 16_384 };

/** Resolves with the first runtime line matching, or rejects after `timeoutMs`. */
function nextLine<T extends RuntimeToWorker['type']>(
  session: SandboxSession,
  type: T,
  timeoutMs = 30_000,
): Promise<Extract<RuntimeToWorker, { type: T }> & { at: number }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`bench: no ${type} line from the sandbox within ${timeoutMs} ms`));
    }, timeoutMs);
    const off = session.onMessage((line) => {
      if (!line.ok || line.value.type !== type) return;
      clearTimeout(timer);
      off();
      resolve({ ...(line.value as Extract<RuntimeToWorker, { type: T }>), at: performance.now() });
    });
  });
}

/** Opens a sandbox and waits for its runtime to answer: what a new conversation costs before the model. */
async function openReady(config: Config, name: string): Promise<{ session: SandboxSession; ms: number }> {
  const driver = sandboxDriverFromConfig(config);
  const began = performance.now();
  const session = await driver.open(webConversationId(name));
  const ready = nextLine(session, 'ready');
  session.send({ type: 'hello' });
  await ready;
  return { session, ms: performance.now() - began };
}

export interface ToolCallResults {
  /** tool_started → tool_finished, as the worker's side of the protocol sees them. */
  inSandbox: number[];
  /** `run` sent → tool_finished received: the whole protocol round trip. */
  roundTrip: number[];
  /** The same, each call sent 20 ms after the last one ended (a model's answer comes in between). */
  pacedInSandbox: number[];
  pacedRoundTrip: number[];
  /** The same command through the engine: exec create + start + wait for its end + inspect. */
  dockerExec: number[];
}

/** The pause between paced calls: less than any model takes to answer. */
export const TOOL_PAUSE_MS = 20;

/** A `true` run over the attached protocol stream, and the same with `docker exec`, n times each. */
export async function measureToolCalls(config: Config, docker: Dockerode, n = 50): Promise<ToolCallResults> {
  const { session } = await openReady(config, 'toolcall');
  const results: ToolCallResults = {
    inSandbox: [],
    roundTrip: [],
    pacedInSandbox: [],
    pacedRoundTrip: [],
    dockerExec: [],
  };
  for (const paced of [false, true]) {
    for (let i = -5; i < n; i++) {
      if (paced) await sleep(TOOL_PAUSE_MS);
      const turnId = `run-${paced ? 'p' : 'b'}${i + 5}`;
      const started = nextLine(session, 'tool_started');
      const finished = nextLine(session, 'tool_finished');
      const done = nextLine(session, 'turn_done');
      const sentAt = performance.now();
      session.send({ type: 'run', turnId, command: 'true', limits: LIMITS });
      const [s, f] = await Promise.all([started, finished, done]);
      if (!f.ok) throw new Error(`bench: \`true\` failed in the sandbox: ${f.output}`);
      if (i < 0) continue; // warm-up
      (paced ? results.pacedInSandbox : results.inSandbox).push(f.at - s.at);
      (paced ? results.pacedRoundTrip : results.roundTrip).push(f.at - sentAt);
    }
  }
  await session.close();
  const container = docker.getContainer(
    sandboxNames(config.SANDBOT_INSTANCE, webConversationId('toolcall')).container,
  );
  for (let i = -5; i < n; i++) {
    const began = performance.now();
    const exec = await container.exec({ Cmd: ['true'], AttachStdout: true, AttachStderr: true });
    const stream = await exec.start({ hijack: true, stdin: false });
    await new Promise<void>((resolve, reject) => {
      stream.on('end', resolve).on('close', resolve).on('error', reject).resume();
    });
    const { ExitCode } = await exec.inspect();
    if (ExitCode !== 0) throw new Error(`bench: docker exec of \`true\` exited ${ExitCode}`);
    if (i >= 0) results.dockerExec.push(performance.now() - began);
  }
  return results;
}

/** The engine calls around a turn, each timed alone on a running sandbox (see RESULTS.md for when each is made). */
export interface TurnSteps {
  'open, new attach (inspect + attach)': number[];
  'open, kept connection (the worker keeps it between turns)': number[];
  'claim a pooled sandbox (new conversation, warm pool)': number[];
  'putWorkspaceFile (canary, only when not as planted)': number[];
  'snapshotWorkspace (audit, once per turn, after the reply is out)': number[];
  'readOutbox (once per reply, before it)': number[];
}

export async function measureTurnSteps(config: Config, n = 20, claims = 8): Promise<TurnSteps> {
  const driver = sandboxDriverFromConfig(config);
  const keeping = sandboxDriverFromConfig(config);
  keeping.keepAttached(4);
  const conversation = webConversationId('toolcall');
  const steps: TurnSteps = {
    'open, new attach (inspect + attach)': [],
    'open, kept connection (the worker keeps it between turns)': [],
    'claim a pooled sandbox (new conversation, warm pool)': [],
    'putWorkspaceFile (canary, only when not as planted)': [],
    'snapshotWorkspace (audit, once per turn, after the reply is out)': [],
    'readOutbox (once per reply, before it)': [],
  };
  const time = async (into: number[], step: () => Promise<unknown>) => {
    const began = performance.now();
    await step();
    into.push(performance.now() - began);
  };
  await (await keeping.open(conversation)).close();
  for (let i = 0; i < n; i++) {
    await time(steps['open, new attach (inspect + attach)'], async () =>
      (await driver.open(conversation)).close(),
    );
    await time(steps['open, kept connection (the worker keeps it between turns)'], async () =>
      (await keeping.open(conversation)).close(),
    );
    await time(steps['putWorkspaceFile (canary, only when not as planted)'], () =>
      driver.putWorkspaceFile(conversation, '.bench-canary', Buffer.from('x')),
    );
    await time(steps['snapshotWorkspace (audit, once per turn, after the reply is out)'], () =>
      driver.snapshotWorkspace(conversation),
    );
    await time(steps['readOutbox (once per reply, before it)'], () =>
      driver.readOutbox(conversation, Date.now(), 1e6),
    );
  }
  keeping.dropAttached();
  // Claims: a pool of one, refilled by hand before each (the refill is background work in a worker).
  // Measured without caps, as before capped pools (the burst's pooled row has them).
  const uncapped = sandboxDriverFromConfig({ ...config, SANDBOX_WORKSPACE_MB: 0 });
  const pool: PooledSandbox[] = [];
  uncapped.usePool({ take: () => pool.shift(), claimed: async () => undefined, discard: () => undefined });
  for (let i = 0; i < claims; i++) {
    pool.push(await uncapped.createPooled('bench', []));
    await time(steps['claim a pooled sandbox (new conversation, warm pool)'], async () =>
      (await uncapped.open(webConversationId(`claim-${i}`))).close(),
    );
    if (pool.length > 0) throw new Error('bench: the pooled sandbox was not claimed');
  }
  uncapped.usePool(undefined);
  return steps;
}

export interface DensityResults {
  count: number;
  openMs: number[];
  /** Per idle sandbox: the container cgroup's memory as `docker stats` counts it (usage − inactive file). */
  cgroupBytes: number[];
  /** Per idle sandbox: RSS of the engine's containerd-shim process that keeps it (outside its cgroup). */
  shimBytes: number[];
  /** Host MemAvailable before minus after, per sandbox: includes the engine's shim and kernel overhead. */
  hostBytesPer: number;
  availableBefore: number;
  /** CPU all idle sandboxes used together over a 5 s window, in % of one core. */
  idleCpuPercent: number;
}

const cgroupFile = (controller: string, id: string, file: string) =>
  readFileSync(`/sys/fs/cgroup/${controller}/docker/${id}/${file}`, 'utf8');

function containerMemory(id: string): number {
  const usage = Number(cgroupFile('memory', id, 'memory.usage_in_bytes'));
  const inactive = Number(
    /total_inactive_file (\d+)/.exec(cgroupFile('memory', id, 'memory.stat'))?.[1] ?? 0,
  );
  return usage - inactive;
}

/** containerd-shim processes by the container id they serve (`-id <id>` on their command line). */
function shimPids(): Map<string, number> {
  const shims = new Map<string, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let args: string[];
    try {
      args = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
    } catch {
      continue; // gone meanwhile
    }
    const id = args.indexOf('-id');
    if (args[0]?.includes('containerd-shim') && id >= 0) shims.set(args[id + 1] ?? '', Number(entry));
  }
  return shims;
}

const cpuNanos = (ids: string[]) =>
  ids.reduce((sum, id) => sum + Number(cgroupFile('cpuacct', id, 'cpuacct.usage')), 0);

/** Opens `count` sandboxes (4 at a time), leaves them idle, and measures what they hold. */
export async function measureDensity(
  config: Config,
  docker: Dockerode,
  count: number,
): Promise<DensityResults> {
  const names = Array.from({ length: count }, (_, i) => `idle-${i}`);
  await sleep(2000);
  const availableBefore = availableBytes();
  const openMs = await mapLimit(names, 4, async (name) => {
    const { session, ms } = await openReady(config, name);
    await session.close();
    return ms;
  });
  await sleep(10_000); // let start-up settle into idle
  const ids = await Promise.all(
    names.map(async (name) => {
      const container = docker.getContainer(
        sandboxNames(config.SANDBOT_INSTANCE, webConversationId(name)).container,
      );
      return (await container.inspect()).Id;
    }),
  );
  const cgroupBytes = ids.map(containerMemory);
  const shims = shimPids();
  const shimBytes = ids.map((id) => {
    const pid = shims.get(id);
    return pid === undefined ? Number.NaN : rssBytes(pid);
  });
  const hostBytesPer = (availableBefore - availableBytes()) / count;
  const cpuBefore = cpuNanos(ids);
  const windowStart = performance.now();
  await sleep(5000);
  const idleCpuPercent = ((cpuNanos(ids) - cpuBefore) / 1e6 / (performance.now() - windowStart)) * 100;
  return { count, openMs, cgroupBytes, shimBytes, hostBytesPer, availableBefore, idleCpuPercent };
}
