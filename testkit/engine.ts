import { execFile, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import type Dockerode from 'dockerode';
import { createDocker } from '../sandbox/host/driver/docker-client.js';
import { SANDBOX_IMAGE } from './instance.js';
import { isGone } from './processes.js';

const run = promisify(execFile);

// Extra Docker engines on this machine (their own data and exec roots and socket), for the tests
// (test/helpers/ipv6-engine.ts, second-engine.ts) and the bench's two-host burst.

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
  daemonConfig: Record<string, unknown> = {},
): Promise<void> {
  const { dir } = state;
  writeFileSync(`${dir}/daemon.json`, JSON.stringify(daemonConfig));
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

/**
 * Another Docker engine on this machine, as a second host (its own engine ID, data and exec roots,
 * socket), for the bench's two-host burst: no default bridge and no firewall of its own (--bridge=none
 * --iptables=false: it must not touch the system engine's chains). It registers the system engine's
 * runtimes (runsc), so SANDBOX_LAYER=auto picks the same layer on both. The sandbox image is copied in.
 */
export interface ExtraEngine {
  /** DOCKER_HOST for it: unix://… */
  host: string;
  docker: Dockerode;
  /** Stops it, removes its containers, mounts and files. */
  remove(): Promise<void>;
}

/** The system engine's runtimes (/etc/docker/daemon.json), for the new engine's own config. */
function systemRuntimes(): Record<string, unknown> {
  try {
    const parsed = JSON.parse(readFileSync('/etc/docker/daemon.json', 'utf8')) as { runtimes?: object };
    return parsed.runtimes ? { runtimes: parsed.runtimes } : {};
  } catch {
    return {};
  }
}

export async function startExtraEngine(): Promise<ExtraEngine> {
  const dir = mkdtempSync('/tmp/sbxe-');
  const socket = `${dir}/docker.sock`;
  const docker = createDocker(`unix://${socket}`);
  const state: EngineState = { dir, bridge: '', pid: 0, networks: [] };
  const remove = () => stopEngine(docker, state);
  try {
    await launchDockerd(
      docker,
      state,
      socket,
      [
        ...[
          '--bridge=none',
          '--iptables=false',
          '--ip6tables=false',
          '--ip-forward=false',
          '--ip-masq=false',
        ],
        ...['--userland-proxy=false', '--default-address-pool', 'base=10.214.0.0/16,size=24'],
      ],
      systemRuntimes(),
    );
    await loadSandboxImage(docker);
  } catch (error) {
    const text = existsSync(`${dir}/dockerd.log`) ? readFileSync(`${dir}/dockerd.log`, 'utf8') : '';
    await remove();
    throw new Error(`${(error as Error).message}\n${text.split('\n').slice(-8).join('\n')}`);
  }
  return { host: `unix://${socket}`, docker, remove };
}
