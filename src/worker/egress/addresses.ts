import { networkInterfaces } from 'node:os';

/** "host:port" of a CONNECT request (IPv6 in brackets). */
export function parseAuthority(authority: string): { host: string; port: number } | undefined {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(authority);
  if (!match) return undefined;
  const port = Number(match[3]);
  if (port < 1 || port > 65_535) return undefined;
  return { host: (match[1] ?? match[2] ?? '').toLowerCase(), port };
}

/** Every address of this host's interfaces (bridges included). */
export function localAddresses(): Set<string> {
  const all = Object.values(networkInterfaces()).flatMap((list) => list ?? []);
  return new Set(all.map((a) => a.address.toLowerCase().replace(/%.*$/, '')));
}
