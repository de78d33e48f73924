import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
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
 * between containers (`enable_icc=false`), no IPv6 (the proxy is an IPv4 address; the firewall below
 * also drops IPv6 for engines that give containers link-local addresses anyway). Created once, found
 * again afterwards (a network made by an older sandbot keeps its settings: the firewall still applies).
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
        EnableIPv6: false,
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

/** One host firewall rule: the tool (IPv4 or IPv6 tables) and its arguments after -I/-C/-D. */
export interface FirewallRule {
  tool: 'iptables' | 'ip6tables';
  rule: string[];
}

/**
 * Host firewall rules for the bridge: a sandbox may reach the proxy's port on the host and nothing else
 * of the host (an internal network still reaches host services through its gateway otherwise); over
 * IPv6 nothing at all, neither the host (its link-local address on the bridge) nor another container.
 */
export function firewallRules(network: EgressNetwork, proxyPort: number): FirewallRule[] {
  const bridge = network.bridge;
  const accept = ['-d', network.gateway, '-p', 'tcp', '--dport', String(proxyPort), '-j', 'ACCEPT'];
  return [
    // Listed in the order they end up in the chain: the ACCEPT above the DROP.
    { tool: 'iptables', rule: ['INPUT', '-i', bridge, ...accept] },
    { tool: 'iptables', rule: ['INPUT', '-i', bridge, '-j', 'DROP'] },
    { tool: 'ip6tables', rule: ['INPUT', '-i', bridge, '-j', 'DROP'] },
    { tool: 'ip6tables', rule: ['FORWARD', '-i', bridge, '-j', 'DROP'] },
    { tool: 'ip6tables', rule: ['FORWARD', '-o', bridge, '-j', 'DROP'] },
  ];
}

const hasIpv6 = () => existsSync('/proc/sys/net/ipv6');

/**
 * Adds the rules (each once). IPv4 rules are required. IPv6 is closed by the ip6tables rules and by
 * turning IPv6 off on the host's side of the bridge; a kernel with IPv6 and neither done is an error.
 */
export async function applyFirewall(rules: FirewallRule[], bridge: string): Promise<void> {
  let ipv6Closed = !hasIpv6();
  for (const { tool, rule } of [...rules].reverse()) {
    const exists = await run(tool, ['-C', ...rule]).then(
      () => true,
      () => false,
    );
    const added =
      exists ||
      (await run(tool, ['-I', ...rule]).then(
        () => true,
        (error: Error) => {
          if (tool === 'ip6tables') return false;
          throw new Error(
            `could not add the egress firewall rule (${tool} ${rule.join(' ')}): ${error.message}; the worker needs root (CAP_NET_ADMIN) and iptables for network grants`,
          );
        },
      ));
    if (tool === 'ip6tables' && added) ipv6Closed = true;
  }
  const sysctl = `/proc/sys/net/ipv6/conf/${bridge}/disable_ipv6`;
  if (existsSync(sysctl)) {
    ipv6Closed =
      (await writeFile(sysctl, '1').then(
        () => true,
        () => false,
      )) || ipv6Closed;
  }
  if (!ipv6Closed) {
    throw new Error(
      `could not close IPv6 on ${bridge}: no ip6tables rule could be added and IPv6 could not be turned off on the bridge`,
    );
  }
}

export async function removeFirewall(rules: FirewallRule[]): Promise<void> {
  for (const { tool, rule } of rules) {
    // Delete every copy (a crashed worker may have left one behind).
    while (
      await run(tool, ['-D', ...rule]).then(
        () => true,
        () => false,
      )
    ) {}
  }
}
