import type Dockerode from 'dockerode';
import { SANDBOX_IMAGE } from './instance.js';

/**
 * An "outside" web server for egress tests: a container on its own bridge network in a documentation
 * range. It must not be a server on this host: the egress proxy refuses the host's own addresses.
 * It answers `outside says hi to <path>`, or the page given for a path; `/big/<n>` sends n bytes and
 * `/slow` never finishes. With `tls`, the same pages over HTTPS too (CONNECT tunnels carry TLS only).
 */
export interface OutsideHost {
  address: string;
  port: number;
  /** The HTTPS port, when started with `tls`. */
  tlsPort?: number;
  stop(): Promise<void>;
}

// With UPSTREAM set, the container relays each request to a server of the test on the host (its
// network's gateway), so a test can change what the outside serves while it runs.
const SERVER = `
const http = require('http');
const pages = JSON.parse(process.env.PAGES || '{}');
const upstream = process.env.UPSTREAM;
const serve = (q, r) => {
  const big = /^\\/big\\/(\\d+)$/.exec(q.url);
  if (big) return r.end('x'.repeat(Number(big[1])));
  if (q.url === '/slow') return r.write('starting…');
  if (!upstream) return r.end(pages[q.url] ?? 'outside says hi to ' + q.url + '\\n');
  http.get(upstream + q.url, (a) => a.pipe(r)).on('error', (e) => r.end('upstream failed: ' + e.message));
};
http.createServer(serve).listen(8080);
if (process.env.TLS_KEY) require('https').createServer({ key: process.env.TLS_KEY, cert: process.env.TLS_CERT }, serve).listen(8443);
`;

export async function startOutsideHost(
  docker: Dockerode,
  options: {
    name: string;
    subnet: string;
    address: string;
    pages?: Record<string, string>;
    /** Relay requests to this port on the network's gateway (a server of the test on this host). */
    upstreamPort?: number;
    /** Also serve HTTPS on 8443 with this key and certificate (PEM). */
    tls?: { key: string; cert: string };
  },
): Promise<OutsideHost> {
  const gateway = options.subnet.replace(/\.0\/24$/, '.1');
  // A run that died before its clean-up leaves its network holding the subnet: remove such leftovers.
  for (const stale of await docker.listNetworks()) {
    if (!stale.Name.startsWith('sbx-')) continue;
    if (stale.Name !== options.name && stale.IPAM?.Config?.[0]?.Subnet !== options.subnet) continue;
    await docker
      .getContainer(`${stale.Name}-web`)
      .remove({ force: true })
      .catch(() => undefined);
    await docker
      .getNetwork(stale.Id)
      .remove()
      .catch(() => undefined);
  }
  await docker.createNetwork({
    Name: options.name,
    IPAM: { Config: [{ Subnet: options.subnet, Gateway: gateway }] },
  });
  const container = await docker.createContainer({
    Image: SANDBOX_IMAGE,
    name: `${options.name}-web`,
    Cmd: ['node', '-e', SERVER],
    Env: [
      `PAGES=${JSON.stringify(options.pages ?? {})}`,
      ...(options.upstreamPort ? [`UPSTREAM=http://${gateway}:${options.upstreamPort}`] : []),
      ...(options.tls ? [`TLS_KEY=${options.tls.key}`, `TLS_CERT=${options.tls.cert}`] : []),
    ],
    HostConfig: { NetworkMode: options.name, AutoRemove: false },
    NetworkingConfig: {
      EndpointsConfig: { [options.name]: { IPAMConfig: { IPv4Address: options.address } } },
    },
  });
  await container.start();
  const url = `http://${options.address}:8080/`;
  for (let i = 0; i < 100; i++) {
    if (
      await fetch(url).then(
        (r) => r.ok,
        () => false,
      )
    )
      break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    address: options.address,
    port: 8080,
    ...(options.tls ? { tlsPort: 8443 } : {}),
    async stop() {
      await container.remove({ force: true }).catch(() => undefined);
      await docker
        .getNetwork(options.name)
        .remove()
        .catch(() => undefined);
    },
  };
}
