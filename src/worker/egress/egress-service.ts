import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import type Dockerode from 'dockerode';
import type { Redis } from 'ioredis';
import type { SandboxNetwork } from '../../../sandbox/host/driver/docker-spec.js';
import type { ConversationId } from '../../contracts/conversation/id.js';
import type { Logger } from '../../contracts/log/logger.js';
import type { Grant, NetworkRules } from '../../contracts/policy/network-policy.js';
import { EGRESS_TUNNEL_PORT } from '../../contracts/protocol/egress.js';
import { MAX_SKILL_ACCESS, type SkillAccess } from '../../contracts/protocol/skill-tools.js';
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
import {
  grantsForIdentity,
  identifyCredentials,
  mintCredentials,
  type ProxyIdentity,
  withCredentials,
  withStreamSkill,
} from './skill-credentials.js';

/** The hosts of a conversation's enabled skills (turn-skills.ts), for the proxy and for networkFor. */
export interface SkillGrants {
  /** All its enabled, approved skills' hosts together: whether its sandbox needs a network at all. */
  all(conversation: ConversationId): Promise<Grant[]>;
  /** One skill's approved hosts while it is enabled and approved there; undefined otherwise. */
  of(conversation: ConversationId, skill: string): Promise<Grant[] | undefined>;
}

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
  /** The approved hosts of a conversation's enabled skills: granted only to each skill's credential. */
  skillGrants?: SkillGrants;
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
  /**
   * Tunnelled proxy connections a sandbox's runtime said a skill's tools opened, by this worker's local
   * port (the proxy sees it as the source port): conversation and skill.
   */
  private readonly skillStreams = new Map<number, { conversation: ConversationId; skill: string }>();

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
        identify: (header, sourcePort) => this.identify(header, sourcePort),
        grantsFor: (identity) => this.grantsOfIdentity(identity),
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

  /**
   * The conversation's own grants: its policy and the unexpired one-hour grants of approvals. What its
   * sandbox's credential reaches, and what a sub-agent may be given. Skills' hosts are not among them
   * (see grantsOfIdentity).
   */
  async grantsFor(conversation: ConversationId): Promise<Grant[]> {
    const [policy, approved] = await Promise.all([
      this.policy.grantsFor(conversation),
      this.allowances.grants(conversation),
    ]);
    return [...new Set([...policy, ...approved])];
  }

  /** What a request's credential reaches now: its own grants, plus its skill's hosts for a skill's credential. */
  private async grantsOfIdentity(identity: ProxyIdentity): Promise<Grant[]> {
    const [own, skillHosts] = await Promise.all([
      this.grantsFor(identity.conversation),
      identity.skill ? this.options.skillGrants?.of(identity.conversation, identity.skill) : undefined,
    ]);
    return grantsForIdentity(identity, own, skillHosts);
  }

  /** The network a conversation's sandbox joins (its own grants or its skills' hosts), or undefined for none. */
  async networkFor(conversation: ConversationId): Promise<SandboxNetwork | undefined> {
    const [policy, skills] = await Promise.all([
      this.grantsFor(conversation),
      this.options.skillGrants?.all(conversation) ?? [],
    ]);
    if (policy.length === 0 && skills.length === 0) return undefined;
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
        connect: (from) => this.connectTunnel({ port, host }, conversation, from?.skill),
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
    return mintCredentials(this.secret, { conversation });
  }

  /**
   * Each named skill's own proxy URL in this sandbox: the network's, with the skill's credential. Only
   * that skill's tool processes receive it (the runtime runs them under a uid of their own).
   */
  skillAccess(
    conversation: ConversationId,
    network: SandboxNetwork,
    skills: readonly string[],
  ): SkillAccess[] {
    // Tunnelled, no credential goes in: the runtime names the skill of each stream (connectTunnel).
    if (network.via === 'tunnel') return skills.slice(0, MAX_SKILL_ACCESS).map((skill) => ({ skill }));
    return skills.slice(0, MAX_SKILL_ACCESS).map((skill) => ({
      skill,
      proxyUrl: withCredentials(network.proxyUrl, mintCredentials(this.secret, { conversation, skill })),
    }));
  }

  /**
   * A tunnel stream's connection to the proxy; one the sandbox's runtime says a skill's tools opened is
   * remembered by its local port until it closes, so the proxy adds that skill's hosts for it.
   */
  private connectTunnel(
    to: { port: number; host: string },
    conversation: ConversationId,
    skill: string | undefined,
  ): Socket {
    const socket = connect({ ...to, allowHalfOpen: true });
    if (!skill) return socket;
    socket.once('connect', () => {
      const port = socket.localPort;
      if (port === undefined) return;
      this.skillStreams.set(port, { conversation, skill });
      socket.once('close', () => this.skillStreams.delete(port));
    });
    return socket;
  }

  /** Drops the key older versions kept in Redis, where a gateway's credentials could read it. */
  private async dropStoredSecret(): Promise<void> {
    await this.options.redis.del(instanceKeys(this.options.instance).egressSecret).catch(() => undefined);
  }

  /**
   * Whose credentials these are; forged or missing credentials identify nobody. A tunnel stream its
   * sandbox's runtime named a skill's adds that skill, when the credentials are that sandbox's own.
   */
  private async identify(
    header: string | undefined,
    sourcePort?: number,
  ): Promise<ProxyIdentity | undefined> {
    const stream = sourcePort === undefined ? undefined : this.skillStreams.get(sourcePort);
    return withStreamSkill(identifyCredentials(this.secret, header), stream);
  }

  async stop(): Promise<void> {
    await this.proxy?.close();
    if (this.rules.length) await removeFirewall(this.rules);
  }
}
