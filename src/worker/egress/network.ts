import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type Dockerode from 'dockerode';
import { shortHash } from '../../contracts/conversation/id.js';

const run = promisify(execFile);

export interface EgressNetwork {
  name: string;
  /** The Linux bridge behind it (at most 15 characters). */
  bridge: string;
  /** The host's address on that bridge: where the proxy listens. */
  gateway: string;
}

/**
 * The instance's internal network for granted sandboxes: no route out (Docker's `internal`), no traffic
 * between containers (`enable_icc=false`). Created once, found again afterwards.
 */
export async function ensureEgressNetwork(docker: Dockerode, instance: string): Promise<EgressNetwork> {
  const name = `${instance}-egress`;
  const bridge = `sbx-${shortHash(instance).slice(0, 10)}`;
  let info: Dockerode.NetworkInspectInfo;
  try {
    info = await docker.getNetwork(name).inspect();
  } catch (error) {
    if ((error as { statusCode?: number }).statusCode !== 404) throw error;
    await docker
      .createNetwork({
        Name: name,
        Driver: 'bridge',
        Internal: true,
        CheckDuplicate: true,
        Labels: { 'sandbot.instance': instance, 'sandbot.kind': 'egress' },
        Options: {
          'com.docker.network.bridge.name': bridge,
          'com.docker.network.bridge.enable_icc': 'false',
        },
      })
      .catch((e: { statusCode?: number }) => {
        if (e.statusCode !== 409) throw e;
      });
    info = await docker.getNetwork(name).inspect();
  }
  const gateway = info.IPAM?.Config?.[0]?.Gateway;
  if (!gateway) throw new Error(`network ${name} has no gateway address`);
  return { name, bridge: info.Options?.['com.docker.network.bridge.name'] ?? bridge, gateway };
}

/**
 * Host firewall rules for the bridge: a sandbox may reach the proxy's port on the host and nothing else
 * of the host (an internal network still reaches host services through its gateway otherwise).
 */
export function firewallRules(network: EgressNetwork, proxyPort: number): string[][] {
  return [
    // Listed in the order they end up in the chain: the ACCEPT above the DROP.
    [
      'INPUT',
      '-i',
      network.bridge,
      '-d',
      network.gateway,
      '-p',
      'tcp',
      '--dport',
      String(proxyPort),
      '-j',
      'ACCEPT',
    ],
    ['INPUT', '-i', network.bridge, '-j', 'DROP'],
  ];
}

export async function applyFirewall(rules: string[][]): Promise<void> {
  for (const rule of [...rules].reverse()) {
    const exists = await run('iptables', ['-C', ...rule]).then(
      () => true,
      () => false,
    );
    if (!exists)
      await run('iptables', ['-I', ...rule]).catch((error: Error) => {
        throw new Error(
          `could not add the egress firewall rule (iptables ${rule.join(' ')}): ${error.message}; the worker needs root (CAP_NET_ADMIN) and iptables for network grants`,
        );
      });
  }
}

export async function removeFirewall(rules: string[][]): Promise<void> {
  for (const rule of rules) {
    // Delete every copy (a crashed worker may have left one behind).
    while (
      await run('iptables', ['-D', ...rule]).then(
        () => true,
        () => false,
      )
    ) {}
  }
}
