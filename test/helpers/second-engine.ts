import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type Dockerode from 'dockerode';
import { createDocker } from '../../sandbox/host/driver/docker-client.js';
import {
  type EngineState,
  launchDockerd,
  loadSandboxImage,
  pidIn,
  stopEngine,
  terminate,
} from '../../testkit/engine.js';

/**
 * A second Docker engine on this machine: another host to sandbot (its own engine ID), with its own
 * data and exec roots and socket, no default bridge and no firewall of its own (--bridge=none
 * --iptables=false: it must not touch the system engine's chains). It can be stopped and started
 * again on the same data root, as a host that goes away and comes back; `remove` ends it for good.
 * Its networks come from a range of their own (not the IPv6 engine's, which may run beside it).
 */
export interface SecondEngine {
  /** DOCKER_HOST for it: unix://… */
  host: string;
  docker: Dockerode;
  /** Stops dockerd (its containers stop); volumes and images stay in its data root. */
  stop(): Promise<void>;
  /** Starts it again on the same roots. */
  start(): Promise<void>;
  remove(): Promise<void>;
}

/** Starts the engine and loads the sandbox image into it (once: it stays across stop/start). */
export async function startSecondEngine(): Promise<SecondEngine> {
  const dir = mkdtempSync('/tmp/sbxh-');
  const socket = `${dir}/docker.sock`;
  const docker = createDocker(`unix://${socket}`);
  const state: EngineState = { dir, bridge: '', pid: 0, networks: [] };
  const launch = () =>
    launchDockerd(docker, state, socket, [
      ...['--bridge=none', '--iptables=false', '--ip6tables=false', '--ip-forward=false', '--ip-masq=false'],
      ...['--userland-proxy=false', '--default-address-pool', 'base=10.213.0.0/16,size=24'],
    ]);
  const halt = async () => {
    const containerd = pidIn(`${dir}/exec/containerd/containerd.pid`);
    await terminate(state.pid);
    if (containerd) await terminate(containerd);
  };
  try {
    await launch();
    await loadSandboxImage(docker);
  } catch (error) {
    const log = existsSync(`${dir}/dockerd.log`) ? readFileSync(`${dir}/dockerd.log`, 'utf8') : '';
    await halt();
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`${(error as Error).message}\n${log.split('\n').slice(-8).join('\n')}`);
  }
  return {
    host: `unix://${socket}`,
    docker,
    stop: halt,
    start: launch,
    remove: () => stopEngine(docker, state),
  };
}
