import { BlockList, isIP } from 'node:net';
import { parse as parseDomain } from 'tldts';
import { z } from 'zod';
import { coversConversation } from '../conversation/id.js';
import { splitPrefixRules } from '../conversation/prefix-rules.js';

/**
 * Network policy decisions, pure: which hosts a conversation may reach, and which addresses nobody may
 * reach whatever name leads there.
 */

/**
 * Why a wildcard grant covers more than one registrable domain (`*.com`, `*.co.uk`, `*.github.io`, a
 * numeric suffix that matches IP literals), or undefined when it does not. Public suffixes come from the
 * Public Suffix List, private section included: `*.github.io` would grant every GitHub Pages site.
 * Exact names are one host whatever they are.
 */
export function grantTooBroad(grant: string): string | undefined {
  const [pattern = ''] = grant.split(':');
  if (!pattern.startsWith('*.')) return undefined;
  const suffix = pattern.slice(2);
  if (/^\d+$/.test(suffix.split('.').at(-1) ?? '')) return `"${grant}" would match IP addresses`;
  const parsed = parseDomain(suffix, { allowPrivateDomains: true });
  if (parsed.isIp || !parsed.domain) {
    return `"${grant}" covers every domain under the public suffix "${suffix}": grant one domain, e.g. "*.example.${suffix}"`;
  }
  return undefined;
}

/**
 * One grant: an exact host name or `*.suffix` (within one registrable domain), optionally with a port.
 * Every entry point (config rules, the chat command, skill manifests, stored grants) parses with this.
 */
export const Grant = z
  .string()
  .trim()
  .toLowerCase()
  .regex(
    /^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:\d{1,5})?$/,
    'a host name, "*.suffix", optionally ":port"',
  )
  .superRefine((grant, ctx) => {
    const broad = grantTooBroad(grant);
    if (broad) ctx.addIssue({ code: 'custom', message: `a grant within one domain (${broad})` });
    // An address literal is granted only when anyone could reach it: the proxy would refuse a private
    // one anyway, so saying so when the grant is made beats a grant that silently never works.
    const host = grant.replace(/:\d{1,5}$/, '');
    const forbiddenWhy = isIP(host) ? forbiddenAddress(host) : undefined;
    if (forbiddenWhy) ctx.addIssue({ code: 'custom', message: `a public host (${forbiddenWhy})` });
  });
export type Grant = z.infer<typeof Grant>;

export function parseGrants(text: string): Grant[] {
  return text
    .split(/[\s,]+/)
    .filter(Boolean)
    .map((item) => Grant.parse(item));
}

/** The ports a grant without one allows: plain and TLS web traffic, not SMTP, SSH or anything else. */
export const DEFAULT_GRANT_PORTS: readonly number[] = [80, 443];

/**
 * Whether `host:port` is covered by a grant. `*.example.com` covers sub-domains, not example.com itself;
 * a grant without a port covers 80 and 443 only. A grant too broad to be accepted covers nothing.
 */
export function isGranted(grants: readonly Grant[], host: string, port: number): boolean {
  const name = host.toLowerCase().replace(/\.$/, '');
  return grants.some((grant) => {
    const [pattern = '', grantPort] = grant.split(':');
    if (grantPort === undefined ? !DEFAULT_GRANT_PORTS.includes(port) : Number(grantPort) !== port)
      return false;
    if (pattern.startsWith('*.')) {
      return name.endsWith(pattern.slice(1)) && name.length > pattern.length - 1 && !grantTooBroad(grant);
    }
    return name === pattern;
  });
}

const forbidden = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8], // "this" network
  ['10.0.0.0', 8],
  ['100.64.0.0', 10], // carrier-grade NAT
  ['127.0.0.0', 8],
  ['169.254.0.0', 16], // link-local, cloud metadata (169.254.169.254)
  ['172.16.0.0', 12],
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.168.0.0', 16],
  ['198.18.0.0', 15], // benchmarking
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, broadcast
] as const) {
  forbidden.addSubnet(net, prefix, 'ipv4');
}
for (const [net, prefix] of [
  ['::', 96], // unspecified, loopback, IPv4-compatible (deprecated, embeds IPv4)
  ['::ffff:0:0:0', 96], // IPv4-translated (SIIT)
  ['64:ff9b:1::', 48], // local-use NAT64 (RFC 8215)
  ['fec0::', 10], // site-local (deprecated, still routed inside some networks)
  ['fc00::', 7], // unique local (fd00::/8, e.g. AWS metadata fd00:ec2::254)
  ['fe80::', 10], // link-local
  ['ff00::', 8], // multicast
  ['64:ff9b::', 96], // NAT64 can reach IPv4 private space
  ['2002::', 16], // 6to4 embeds IPv4 addresses
] as const) {
  forbidden.addSubnet(net, prefix, 'ipv6');
}

/**
 * Why an address may not be reached, or undefined when it may. `local` lists this host's own
 * addresses: a public address of the host is still the host (its Redis, Docker API, gateway).
 */
export function forbiddenAddress(
  address: string,
  local: ReadonlySet<string> = new Set(),
): string | undefined {
  const family = isIP(address);
  if (family === 0) return `${address} is not an IP address`;
  const dotted = family === 6 ? /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1] : undefined;
  if (dotted) return forbiddenAddress(dotted, local);
  // BlockList checks IPv4-mapped addresses in hex (::ffff:7f00:1) against the IPv4 rules itself.
  if (forbidden.check(address, family === 6 ? 'ipv6' : 'ipv4')) {
    return `${address} is a private, loopback, link-local or metadata address`;
  }
  const mapped = family === 6 ? hexMappedIpv4(address) : undefined;
  if (local.has(address.toLowerCase()) || (mapped && local.has(mapped))) {
    return `${address} is an address of the sandbot host itself`;
  }
  return undefined;
}

/** "::ffff:cb00:7107" → "203.0.113.7"; anything else → undefined. */
function hexMappedIpv4(address: string): string | undefined {
  const match = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(address);
  if (!match?.[1] || !match[2]) return undefined;
  const [high, low] = [Number.parseInt(match[1], 16), Number.parseInt(match[2], 16)];
  return [high >> 8, high & 255, low >> 8, low & 255].join('.');
}

/**
 * The grants of a conversation from config rules: `prefix=host,host;prefix=host`, where a rule applies to
 * every conversation whose id starts with the prefix (e.g. `slack:T1:C2` for a channel's threads).
 */
export const NetworkRules = z
  .string()
  .optional()
  .transform((text, ctx) => {
    try {
      return splitPrefixRules(text, 'hosts').map((rule) => {
        try {
          return { prefix: rule.prefix, grants: parseGrants(rule.values) };
        } catch (error) {
          const detail =
            error instanceof z.ZodError ? (error.issues[0]?.message ?? '') : (error as Error).message;
          throw new Error(`"${rule.part}": ${detail}`);
        }
      });
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: (error as Error).message });
      return z.NEVER;
    }
  });
export type NetworkRules = z.infer<typeof NetworkRules>;

export function grantsFromRules(rules: NetworkRules, conversation: string): Grant[] {
  return [
    ...new Set(rules.filter((r) => coversConversation(r.prefix, conversation)).flatMap((r) => r.grants)),
  ];
}
