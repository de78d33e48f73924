import { isIP } from 'node:net';
import type { ConversationId } from '../../contracts/conversation/id.js';
import { forbiddenAddress, type Grant, isGranted } from '../../contracts/policy/network-policy.js';
import { localAddresses } from './addresses.js';
import { dnsResolve, Slots } from './limits.js';
import type { ProxyIdentity } from './skill-credentials.js';

export type Lookup = (host: string) => Promise<{ address: string; family: number }[]>;

/** `skill`: the request carried that skill's credential (see skill-credentials.ts). */
export type Decision =
  | { allowed: true; address: string; conversation?: ConversationId; skill?: string }
  | { allowed: false; reason: string; conversation?: ConversationId; skill?: string };

export interface EgressDeciderOptions {
  /**
   * Which conversation's sandbox (and which skill's tools in it, for a skill's credential) sent this
   * request, from its proxy credentials (undefined: none of ours).
   */
  identify(proxyAuthorization: string | undefined, sourcePort?: number): Promise<ProxyIdentity | undefined>;
  /** What that identity may reach now (a skill's hosts are looked up per request). */
  grantsFor(identity: ProxyIdentity): Promise<Grant[]>;
  lookup?: Lookup;
  /** Name lookups one conversation may have pending at once. */
  maxLookups: number;
}

/**
 * Whether a sandbox may reach host:port, and at which address: its conversation's grants, then the name
 * resolved here (the proxy connects to the address checked, so a name cannot be re-pointed between check
 * and use), refusing private, loopback, link-local and metadata addresses whatever the name.
 */
export class EgressDecider {
  private readonly lookup: Lookup;
  private readonly lookups: Slots;

  constructor(private readonly options: EgressDeciderOptions) {
    this.lookup = options.lookup ?? dnsResolve();
    this.lookups = new Slots(options.maxLookups);
  }

  async decide(
    proxyAuthorization: string | undefined,
    host: string,
    port: number,
    sourcePort?: number,
  ): Promise<Decision> {
    const identity = await this.options.identify(proxyAuthorization, sourcePort);
    if (!identity)
      return { allowed: false, reason: 'the request carries no valid sandbox proxy credentials' };
    const { conversation } = identity;
    const who = identity.skill ? { conversation, skill: identity.skill } : { conversation };
    const grants = await this.options.grantsFor(identity);
    if (!isGranted(grants, host, port)) {
      return {
        allowed: false,
        ...who,
        reason: identity.skill
          ? `${host}:${port} is granted neither to this conversation's network policy nor to skill ${identity.skill} (enabled and approved here)`
          : `${host}:${port} is not granted to this conversation's network policy`,
      };
    }
    const resolved = await this.resolve(conversation, host);
    if ('reason' in resolved) return { allowed: false, ...who, reason: resolved.reason };
    // Every address must be public and not the host's own: a name that also resolves to such an address
    // is refused outright. The host's addresses are read per request (interfaces come and go).
    const local = localAddresses();
    for (const address of resolved.addresses) {
      const why = forbiddenAddress(address, local);
      if (why) return { allowed: false, ...who, reason: `${host} resolves to ${why}` };
    }
    const address = resolved.addresses[0];
    if (!address) return { allowed: false, ...who, reason: `${host} does not resolve` };
    return { allowed: true, ...who, address };
  }

  /** The addresses of a name, at most maxLookups pending per conversation (fresh names cost the worker). */
  private async resolve(
    conversation: ConversationId,
    host: string,
  ): Promise<{ addresses: string[] } | { reason: string }> {
    if (isIP(host)) return { addresses: [host] };
    const release = this.lookups.take(conversation);
    if (!release) {
      return {
        reason: `this sandbox already has ${this.options.maxLookups} name lookups pending (SANDBOT_EGRESS_MAX_LOOKUPS)`,
      };
    }
    try {
      return { addresses: (await this.lookup(host)).map((a) => a.address) };
    } catch {
      return { reason: `${host} does not resolve` };
    } finally {
      release();
    }
  }
}
