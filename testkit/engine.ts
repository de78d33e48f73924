import { execFile, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import type Dockerode from 'dockerode';
import { createDocker } from '../sandbox/host/driver/docker-client.js';
import { SANDBOX_IMAGE } from './instance.js';

const run = promisify(execFile);

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

const isGone = (pid: number) => {
  try {
    process.kill(pid, 0);
    return false;
  } catch {
    return true;
  }
};

async function terminate(pid: number | undefined): Promise<void> {
  if (!pid || isGone(pid)) return;
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 60 && !isGone(pid); i++) await sleep(250);
  if (!isGone(pid)) process.kill(pid, 'SIGKILL');
  for (let i = 0; i < 20 && !isGone(pid); i++) await sleep(250);
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

async function answering(docker: Dockerode, pid: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (
    !(await docker.ping().then(
      () => true,
      () => false,
    ))
  ) {
    if (isGone(pid)) throw new Error('dockerd exited at start');
    if (Date.now() > deadline) throw new Error('dockerd did not answer within 30 s');
    await sleep(250);
  }
}

async function copyImage(to: Dockerode): Promise<void> {
  const saved = await createDocker(process.env.DOCKER_HOST).getImage(SANDBOX_IMAGE).get();
  const loading = await to.loadImage(saved, { quiet: true });
  await new Promise<void>((resolve, reject) => {
    loading.on('error', reject);
    loading.on('end', resolve);
    loading.resume();
  });
  await to.getImage(SANDBOX_IMAGE).inspect();
}

export async function startExtraEngine(): Promise<ExtraEngine> {
  const dir = mkdtempSync('/tmp/sbxe-');
  const socket = `${dir}/docker.sock`;
  const docker = createDocker(`unix://${socket}`);
  writeFileSync(`${dir}/daemon.json`, JSON.stringify(systemRuntimes()));
  const log = openSync(`${dir}/dockerd.log`, 'a');
  const child = spawn(
    'dockerd',
    [
      ...['--config-file', `${dir}/daemon.json`, '--data-root', `${dir}/data`],
      ...['--exec-root', `${dir}/exec`, '--pidfile', `${dir}/dockerd.pid`, '-H', `unix://${socket}`],
      ...['--bridge=none', '--iptables=false', '--ip6tables=false', '--ip-forward=false', '--ip-masq=false'],
      ...['--userland-proxy=false', '--default-address-pool', 'base=10.214.0.0/16,size=24'],
    ],
    { detached: true, stdio: ['ignore', log, log] },
  );
  closeSync(log);
  child.unref();
  const pid = child.pid ?? 0;
  const halt = async () => {
    const containerd = Number(
      existsSync(`${dir}/exec/containerd/containerd.pid`)
        ? readFileSync(`${dir}/exec/containerd/containerd.pid`, 'utf8').trim()
        : 0,
    );
    await terminate(pid);
    await terminate(containerd);
  };
  const remove = async () => {
    for (const c of await docker.listContainers({ all: true }).catch(() => [])) {
      await docker
        .getContainer(c.Id)
        .remove({ force: true })
        .catch(() => undefined);
    }
    await halt();
    const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((line) => line.split(' ')[4] ?? '')
      .filter((point) => point.startsWith(`${dir}/`))
      .reverse();
    for (const point of mounts) await run('umount', ['-l', point]).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await answering(docker, pid);
    await copyImage(docker);
  } catch (error) {
    const text = existsSync(`${dir}/dockerd.log`) ? readFileSync(`${dir}/dockerd.log`, 'utf8') : '';
    await remove();
    throw new Error(`${(error as Error).message}\n${text.split('\n').slice(-8).join('\n')}`);
  }
  return { host: `unix://${socket}`, docker, remove };
}
