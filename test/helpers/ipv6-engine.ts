import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import type Dockerode from 'dockerode';
import { createDocker } from '../../sandbox/host/driver/docker-client.js';
import { SANDBOX_IMAGE } from '../../testkit/instance.js';
import { isGone } from './processes.js';

const run = promisify(execFile);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A second Docker engine that gives containers IPv6 (the system's does not), for tests of what a
 * sandbox gets on an engine that does. It has its own data and exec roots, socket, managed
 * containerd and default bridge, and leaves the host's firewall alone: a dockerd with --iptables
 * flushes the DOCKER chains it finds at start, which are the system engine's (and hold the isolation
 * of every network of tests running beside this one). So --iptables=false, --ip-forward=false (no
 * host sysctl changed) and --ip-masq=false; sandbot's own firewall is what is under test anyway.
 */
export interface Ipv6Engine {
  /** DOCKER_HOST for it: unix://… */
  host: string;
  docker: Dockerode;
  /** Its default bridge, made by this helper. */
  bridge: string;
  /** The IPv6 range containers on the default bridge get addresses from, and its gateway (the host). */
  cidr: string;
  gateway6: string;
  stop(): Promise<void>;
}

/** Starts the engine and loads the sandbox image into it; throws (with the engine's log) if it cannot. */
export async function startIpv6Engine(): Promise<Ipv6Engine> {
  await run('dockerd', ['--version'], { timeout: 5000 });
  // Short paths: containerd's socket lives under the exec root (unix socket paths are ≤ 107 bytes).
  const dir = mkdtempSync('/tmp/sbx6-');
  const tag = randomBytes(2).toString('hex');
  const bridge = `sbx6-${tag}`;
  // Written as the engine writes addresses (no leading zeros in a group), so prefixes compare as text.
  const group = Number.parseInt(tag, 16).toString(16);
  const cidr = `fd00:5b0:${group}::/80`;
  const gateway6 = `fd00:5b0:${group}::1`;
  const octet = Number.parseInt(tag, 16) % 256;
  const socket = `${dir}/docker.sock`;
  const state: EngineState = { dir, bridge, pid: 0, networks: [] };
  try {
    // The RFC 2544 benchmarking range: a lab network on this host alone (the proxy calls it private).
    await run('ip', ['link', 'add', bridge, 'type', 'bridge']);
    await run('ip', ['addr', 'add', `198.18.${octet}.1/24`, 'dev', bridge]);
    await run('ip', ['link', 'set', bridge, 'up']);
    const docker = createDocker(`unix://${socket}`);
    await launchDockerd(docker, state, socket, [
      ...['--ipv6', '--fixed-cidr-v6', cidr, `--bridge=${bridge}`],
      ...['--iptables=false', '--ip-forward=false', '--ip-masq=false', '--userland-proxy=false'],
      ...['--default-address-pool', 'base=198.19.0.0/16,size=24'],
    ]);
    await loadSandboxImage(docker);
    return {
      host: `unix://${socket}`,
      docker,
      bridge,
      cidr,
      gateway6,
      stop: () => stopEngine(docker, state),
    };
  } catch (error) {
    const log = existsSync(`${dir}/dockerd.log`) ? readFileSync(`${dir}/dockerd.log`, 'utf8') : '';
    await stopEngine(undefined, state);
    throw new Error(`${(error as Error).message}\n${log.split('\n').slice(-8).join('\n')}`);
  }
}

export interface EngineState {
  dir: string;
  bridge: string;
  pid: number;
  /** Bridges of networks made on the engine (left behind by an engine that stops). */
  networks: string[];
}

/**
 * Starts dockerd detached with its data and exec roots under `state.dir`, its socket at `socket`, and
 * `flags` (its log in dockerd.log there); resolves once it answers.
 */
export async function launchDockerd(
  docker: Dockerode,
  state: EngineState,
  socket: string,
  flags: string[],
): Promise<void> {
  const { dir } = state;
  writeFileSync(`${dir}/daemon.json`, '{}');
  const log = openSync(`${dir}/dockerd.log`, 'a');
  const child = spawn(
    'dockerd',
    [
      ...['--config-file', `${dir}/daemon.json`, '--data-root', `${dir}/data`],
      ...['--exec-root', `${dir}/exec`, '--pidfile', `${dir}/dockerd.pid`, '-H', `unix://${socket}`],
      ...flags,
    ],
    { detached: true, stdio: ['ignore', log, log] },
  );
  closeSync(log);
  child.unref();
  state.pid = child.pid ?? 0;
  await answering(docker, state);
}

export async function answering(docker: Dockerode, state: EngineState): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (
      await docker.ping().then(
        () => true,
        () => false,
      )
    )
      return;
    if (isGone(state.pid)) throw new Error('dockerd exited at start');
    if (Date.now() > deadline) throw new Error('dockerd did not answer within 30 s');
    await sleep(250);
  }
}

/** `docker save | docker load`, from the system engine to this one. */
export async function loadSandboxImage(docker: Dockerode): Promise<void> {
  const saved = await createDocker(process.env.DOCKER_HOST).getImage(SANDBOX_IMAGE).get();
  const loading = await docker.loadImage(saved, { quiet: true });
  await new Promise<void>((resolve, reject) => {
    loading.on('error', reject);
    loading.on('end', resolve);
    loading.resume();
  });
  await docker.getImage(SANDBOX_IMAGE).inspect();
}

/**
 * Removes what the engine made and stops it: its containers and networks (noting their bridges),
 * dockerd (TERM, then KILL after 15 s) and its containerd, mounts left under its roots, the bridges,
 * the directory. Every step is bounded and best-effort.
 */
export async function stopEngine(docker: Dockerode | undefined, state: EngineState): Promise<void> {
  if (docker && !isGone(state.pid)) {
    const containers = await docker.listContainers({ all: true }).catch(() => []);
    for (const c of containers)
      await docker
        .getContainer(c.Id)
        .remove({ force: true })
        .catch(() => undefined);
    for (const n of await docker.listNetworks().catch(() => [])) {
      if (['bridge', 'host', 'none'].includes(n.Name)) continue;
      state.networks.push(n.Options?.['com.docker.network.bridge.name'] ?? `br-${n.Id.slice(0, 12)}`);
      await docker
        .getNetwork(n.Id)
        .remove()
        .catch(() => undefined);
    }
  }
  const containerd = pidIn(`${state.dir}/exec/containerd/containerd.pid`);
  await terminate(state.pid);
  if (containerd) await terminate(containerd);
  await unmountUnder(state.dir);
  for (const bridge of [...state.networks, state.bridge].filter(Boolean)) {
    await run('ip', ['link', 'del', bridge]).catch(() => undefined);
  }
  rmSync(state.dir, { recursive: true, force: true });
}

/** Lazily unmounts whatever is mounted below `dir`, innermost first (best-effort). */
export async function unmountUnder(dir: string): Promise<void> {
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4] ?? '')
    .filter((point) => point.startsWith(`${dir}/`))
    .reverse();
  for (const point of mounts) await run('umount', ['-l', point]).catch(() => undefined);
}

export function pidIn(file: string): number | undefined {
  try {
    return Number(readFileSync(file, 'utf8').trim()) || undefined;
  } catch {
    return undefined;
  }
}

export async function terminate(pid: number): Promise<void> {
  if (!pid || isGone(pid)) return;
  const signal = (name: NodeJS.Signals) => {
    try {
      process.kill(pid, name);
    } catch {
      // Gone already.
    }
  };
  signal('SIGTERM');
  for (let i = 0; i < 60 && !isGone(pid); i++) await sleep(250);
  if (!isGone(pid)) signal('SIGKILL');
  for (let i = 0; i < 20 && !isGone(pid); i++) await sleep(250);
}
