import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import type Dockerode from 'dockerode';
import { createDocker } from '../../sandbox/host/driver/docker-client.js';
import { type EngineState, launchDockerd, loadSandboxImage, stopEngine } from '../../testkit/engine.js';

const run = promisify(execFile);

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
