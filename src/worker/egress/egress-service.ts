import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { connect } from 'node:net';
import type Dockerode from 'dockerode';
import type { Redis } from 'ioredis';
import type { SandboxNetwork } from '../../../sandbox/host/driver/docker-spec.js';
import { ConversationId } from '../../contracts/conversation/id.js';
import type { Logger } from '../../contracts/log/logger.js';
import type { Grant, NetworkRules } from '../../contracts/policy/network-policy.js';
import { EGRESS_TUNNEL_PORT } from '../../contracts/protocol/egress.js';
import { instanceKeys } from '../../contracts/redis/keys.js';
import { ApprovalAllowances } from '../../shared/stores/approval-allowances.js';
import { NetworkPolicyStore } from '../../shared/stores/policy-store.js';
import {
  applyFirewall,
  type EgressNetwork,
  ensureEgressNetwork,
  type FirewallRule,
  firewallRules,
  removeFirewall,
} from './network.js';
import { EgressProxy, type EgressRecord, type Lookup } from './proxy.js';

export interface EgressServiceOptions {
  docker: Dockerode;
  redis: Redis;
  instance: string;
  rules: NetworkRules;
  /**
   * How granted sandboxes reach the proxy: `bridge`, an internal network whose gateway the proxy listens
   * on (host firewall around it); `tunnel`, their protocol stream (the proxy then listens on the
   * worker's loopback only), for layers without a usable bridge. See SandboxNetwork.
   */
  route: 'bridge' | 'tunnel';
  /** Proxy port on the network's gateway address (0: any free port); tunnelled, any free loopback port. */
  port: number;
  maxBytes: number;
  maxSeconds: number;
  /** Proxy connections one sandbox may hold open at once (default 32). */
  maxConnections?: number;
  /** Name lookups one sandbox's requests may have pending at once (default 8). */
  maxLookups?: number;
  logger: Logger;
  onRecord?: (entry: EgressRecord) => void;
  lookup?: Lookup;
  /** Grants besides the policy's: the approved hosts of a conversation's enabled skills. */
  extraGrants?: (conversation: ConversationId) => Promise<Grant[]>;
}

/**
 * Network grants for sandboxes: the internal network, the host firewall around it, and the egress
 * proxy. If any part cannot be set up (no root, no iptables), grants are refused with the reason; a
 * sandbox never gets a network without the proxy in front of it. A sandbox is identified by proxy
 * credentials only it holds (an HMAC of its conversation id), not by its address, which may be reused.
 * The HMAC key lives in this worker's memory only, never in Redis, so Redis credentials (a gateway's)
 * cannot mint proxy credentials. Only this worker's proxy checks them (tunnelled: its loopback; bridged:
 * the one proxy on the network's gateway port): a sandbox later served by another worker, or by this
 * one restarted, gets new credentials, and the changed network label recreates its container.
 */
export class EgressService {
  readonly policy: NetworkPolicyStore;
  /** One-hour grants from approvals (request_access), until they lapse. */
  private readonly allowances: ApprovalAllowances;
  private network?: EgressNetwork;
  private proxy?: EgressProxy;
  private rules: FirewallRule[] = [];
  private unavailable?: string;
  /** The HMAC key of proxy credentials, made per worker process. */
  private readonly secret = randomBytes(32);
  private ready?: Promise<void>;
  private failedAt = 0;

  constructor(private readonly options: EgressServiceOptions) {
    this.policy = new NetworkPolicyStore(options.redis, options.instance, options.rules);
    this.allowances = new ApprovalAllowances(options.redis, options.instance);
  }

  /** Sets up network, proxy and firewall on first need (an instance that never grants a host makes none). */
  private ensure(): Promise<void> {
    if (!this.ready || (this.unavailable && Date.now() - this.failedAt > 30_000)) {
      this.unavailable = undefined;
      this.ready = this.setUp();
    }
    return this.ready;
  }

  private async setUp(): Promise<void> {
    await this.dropStoredSecret();
    try {
      const tunnel = this.options.route === 'tunnel';
      if (!tunnel) this.network = await ensureEgressNetwork(this.options.docker, this.options.instance);
      this.proxy = new EgressProxy({
        identify: (header) => this.identify(header),
        grantsFor: (conversation) => this.grantsFor(conversation),
        record: (entry) => this.record(entry),
        lookup: this.options.lookup,
        maxBytes: this.options.maxBytes,
        maxSeconds: this.options.maxSeconds,
        maxConnections: this.options.maxConnections ?? 32,
        maxLookups: this.options.maxLookups ?? 8,
        capPerSource: !tunnel,
      });
      // Tunnelled, only this worker connects to it: any free loopback port (workers on one host differ).
      if (this.network) await this.proxy.listen(this.network.gateway, this.options.port);
      else await this.proxy.listen('127.0.0.1', 0);
      if (this.network) {
        this.rules = firewallRules(this.network, this.proxy.address().port);
        await applyFirewall(this.rules, this.network.bridge);
      }
      this.options.logger.info(
        { route: this.options.route, network: this.network?.name, proxy: this.proxy.address() },
        'egress proxy ready',
      );
    } catch (error) {
      this.unavailable = (error as Error).message;
      this.failedAt = Date.now();
      await this.proxy?.close();
      this.proxy = undefined;
      this.options.logger.error({ err: error }, 'egress unavailable: network grants will be refused');
    }
  }

  /** The policy's grants, the extra ones (skills) and unexpired one-hour grants of approvals, together. */
  async grantsFor(conversation: ConversationId): Promise<Grant[]> {
    const [policy, extra, approved] = await Promise.all([
      this.policy.grantsFor(conversation),
      this.options.extraGrants?.(conversation) ?? [],
      this.allowances.grants(conversation),
    ]);
    return [...new Set([...policy, ...extra, ...approved])];
  }

  /** The network a conversation's sandbox joins, or undefined for none (no grants). */

  async networkFor(conversation: ConversationId): Promise<SandboxNetwork | undefined> {
    const grants = await this.grantsFor(conversation);
    if (grants.length === 0) return undefined;
    await this.ensure();
    const proxy = this.proxy;
    if (!proxy || (this.options.route === 'bridge' && !this.network)) {
      throw new Error(
        `this conversation is granted network access, but egress is unavailable on this worker: ${this.unavailable ?? 'not started'}`,
      );
    }
    const { host, port } = proxy.address();
    const credentials = this.credentials(conversation);
    if (!this.network) {
      return {
        via: 'tunnel',
        proxyUrl: `http://${credentials}@127.0.0.1:${EGRESS_TUNNEL_PORT}`,
        connect: () => connect({ port, host, allowHalfOpen: true }),
      };
    }
    return { name: this.network.name, proxyUrl: `http://${credentials}@${this.network.gateway}:${port}` };
  }

  private record(entry: EgressRecord): void {
    const level = entry.allowed ? 'info' : 'warn';
    this.options.logger[level](
      { audit: 'net.request', ...entry },
      entry.allowed ? 'egress allowed' : 'egress refused',
    );
    this.options.onRecord?.(entry);
  }

  /** Proxy credentials of a conversation: its id and an HMAC of it under this worker's key. */
  private credentials(conversation: ConversationId): string {
    const mac = createHmac('sha256', this.secret).update(conversation).digest('hex');
    return `${encodeURIComponent(conversation)}:${mac}`;
  }

  /** Drops the key older versions kept in Redis, where a gateway's credentials could read it. */
  private async dropStoredSecret(): Promise<void> {
    await this.options.redis.del(instanceKeys(this.options.instance).egressSecret).catch(() => undefined);
  }

  /** The conversation whose credentials these are; forged or missing credentials identify nobody. */
  private async identify(header: string | undefined): Promise<ConversationId | undefined> {
    const match = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(header ?? '');
    if (!match?.[1]) return undefined;
    const decoded = Buffer.from(match[1], 'base64').toString('utf8');
    // Clients send the user name decoded ("web:alice"); the MAC after the last colon has none.
    const colon = decoded.lastIndexOf(':');
    const conversation = ConversationId.safeParse(safeDecode(decoded.slice(0, colon)));
    if (colon < 0 || !conversation.success) return undefined;
    const expected = Buffer.from(this.credentials(conversation.data));
    const given = Buffer.from(`${encodeURIComponent(conversation.data)}:${decoded.slice(colon + 1)}`);
    return expected.length === given.length && timingSafeEqual(expected, given)
      ? conversation.data
      : undefined;
  }

  async stop(): Promise<void> {
    await this.proxy?.close();
    if (this.rules.length) await removeFirewall(this.rules);
  }
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
