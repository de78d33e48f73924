import { randomBytes } from 'node:crypto';
import { expect } from 'vitest';
import type { Lookup } from '../../src/worker/egress/proxy.js';
import { UNDER_GVISOR } from '../helpers/stack.js';
import { type Redteam, startRedteam } from './harness.js';
import { DNSQ_PY, hostAddresses, hostPublicAddresses, TUNNEL_PY } from './net-fixtures.js';

/** A conversation granted some hosts, and one granted none. */
export const GRANTED = 'net-a';
export const UNGRANTED = 'nonet';
/** The host's own address that the proxy's address rules call public (absent on some hosts). */
export const HOST_PUBLIC: string | undefined = hostPublicAddresses()[0];
export const HOST_ADDRESSES = hostAddresses();
/** What stops a granted sandbox's direct connections: the bridge's firewall, or (tunnelled) no device at all. */
export const DIRECT_BLOCKED = UNDER_GVISOR
  ? 'no route (no network device: egress is tunnelled)'
  : 'dropped by the host firewall';

export interface NetworkRedteam {
  rt: Redteam;
  /** Every name the egress proxy asked to resolve, in order. */
  looked: string[];
  /** The gateway's HTTP port (it listens on every host address here). */
  gatewayPort: string;
}

/**
 * A red-team stack for network attacks: conversations `web:net-…` are granted `grants`, names resolve
 * by `resolve` (recorded), the gateway listens on every host address (the worst case), and the two
 * attacking conversations already hold the helper scripts (tunnel.py, dnsq.py).
 */
export async function startNetworkRedteam(
  label: string,
  grants: string[],
  resolve: (host: string) => string[] | undefined | Promise<string[] | undefined>,
  settings: Record<string, string> = {},
): Promise<NetworkRedteam> {
  const looked: string[] = [];
  const lookup: Lookup = async (host) => {
    looked.push(host);
    const addresses = await resolve(host);
    if (!addresses) throw new Error('ENOTFOUND');
    return addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };
  const rt = await startRedteam(label, {
    lookup,
    settings: {
      SANDBOT_NETWORK_RULES: `web:net-*=${grants.join(',')}`,
      SANDBOT_EGRESS_PORT: '0',
      SANDBOT_HTTP_HOST: '0.0.0.0',
      // Beyond loopback the gateway needs a real token (issue #18); the attacks never learn it.
      SANDBOT_API_TOKEN: randomBytes(24).toString('hex'),
      // Many refusals per attack here; the refusal tripwire has its own attack (injection).
      SANDBOT_TRIPWIRE_EGRESS_REFUSALS: '1000',
      ...settings,
    },
  });
  for (const session of [GRANTED, UNGRANTED]) {
    const helpers = await rt.ask(
      session,
      `@tools ${JSON.stringify([
        { name: 'write_file', arguments: { path: 'tunnel.py', content: TUNNEL_PY } },
        { name: 'write_file', arguments: { path: 'dnsq.py', content: DNSQ_PY } },
      ])}`,
    );
    expect(helpers.kind).toBe('reply');
    await rt.checkpoint(session);
  }
  return { rt, looked, gatewayPort: new URL(rt.stack.url).port };
}

/** Probes every address at once (a dropped packet costs the probe its whole second). */
export const probes = (port: number | string, addresses: string[] = [...HOST_ADDRESSES, '$gw']) =>
  `{ ${addresses.map((a) => `probe ${a} ${port} &`).join(' ')} wait; }`;
