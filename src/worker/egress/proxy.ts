import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, isIP, type Socket } from 'node:net';
import type { ConversationId } from '../../contracts/conversation/id.js';
import { forbiddenAddress, type Grant, isGranted } from '../../contracts/policy/network-policy.js';
import { localAddresses, parseAuthority } from './addresses.js';
import { forwardPlain, meterTunnel } from './forward.js';
import { dnsResolve, Slots } from './limits.js';
import { peekHello, sniProblem } from './sni.js';

export type Lookup = (host: string) => Promise<{ address: string; family: number }[]>;

export interface EgressRecord {
  conversation?: ConversationId;
  source: string;
  method: string;
  host: string;
  port: number;
  allowed: boolean;
  reason?: string;
  bytesOut: number;
  bytesIn: number;
  durationMs: number;
}

export interface EgressProxyOptions {
  /** Which conversation's sandbox sent this request, from its proxy credentials (undefined: none of ours). */
  identify(proxyAuthorization: string | undefined): Promise<ConversationId | undefined>;
  grantsFor(conversation: ConversationId): Promise<Grant[]>;
  /** Called once per request, allowed or refused. */
  record(entry: EgressRecord): void;
  lookup?: Lookup;
  /** Bytes one request may move, both directions together. */
  maxBytes: number;
  /** Time one request may last. */
  maxSeconds: number;
  /** Requests and tunnels one conversation may have open at once. */
  maxConnections: number;
  /** Name lookups one conversation may have pending at once. */
  maxLookups: number;
  /**
   * Also cap TCP connections (idle keep-alive ones too) per source address at maxConnections: on a bridge,
   * where each sandbox has its own address. Tunnelled, every sandbox comes from loopback (the tunnel caps
   * its own streams).
   */
  capPerSource?: boolean;
}

type Decision =
  | { allowed: true; address: string }
  | { allowed: false; reason: string; conversation?: ConversationId };

/**
 * The only way out of a sandbox: an HTTP proxy (plain requests and CONNECT tunnels) that allows only the
 * hosts granted to the sandbox's conversation, resolves names itself and connects to the address it
 * checked (so a name cannot be re-pointed between check and use), refuses private, loopback, link-local
 * and metadata addresses whatever the name, lets a tunnel carry only TLS to the CONNECT host (its SNI),
 * caps bytes, time, open connections and pending lookups per sandbox, and records every request.
 */
export class EgressProxy {
  private readonly server: Server;
  private readonly lookup: Lookup;
  private readonly open: Slots;
  private readonly lookups: Slots;

  constructor(private readonly options: EgressProxyOptions) {
    this.lookup = options.lookup ?? dnsResolve();
    this.open = new Slots(options.maxConnections);
    this.lookups = new Slots(options.maxLookups);
    this.server = createServer((req, res) => void this.onRequest(req, res));
    if (options.capPerSource) {
      const sockets = new Slots(options.maxConnections);
      this.server.on('connection', (socket: Socket) => {
        const release = sockets.take(socket.remoteAddress ?? '');
        if (!release) return socket.destroy();
        socket.once('close', release);
      });
    }
    this.server.on(
      'connect',
      (req: IncomingMessage, socket: Socket, head: Buffer) => void this.onConnect(req, socket, head),
    );
  }

  listen(host: string, port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => resolve());
    });
  }

  address(): { host: string; port: number } {
    const a = this.server.address();
    if (a === null || typeof a === 'string') throw new Error('egress proxy is not listening');
    return { host: a.address, port: a.port };
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.closeAllConnections();
      this.server.close(() => resolve());
    });
  }

  async decide(
    proxyAuthorization: string | undefined,
    host: string,
    port: number,
  ): Promise<Decision & { conversation?: ConversationId }> {
    const conversation = await this.options.identify(proxyAuthorization);
    if (!conversation)
      return { allowed: false, reason: 'the request carries no valid sandbox proxy credentials' };
    const grants = await this.options.grantsFor(conversation);
    if (!isGranted(grants, host, port)) {
      return {
        allowed: false,
        conversation,
        reason: `${host}:${port} is not granted to this conversation's network policy`,
      };
    }
    const resolved = await this.resolve(conversation, host);
    if ('reason' in resolved) return { allowed: false, conversation, reason: resolved.reason };
    // Every address must be public and not the host's own: a name that also resolves to such an address
    // is refused outright. The host's addresses are read per request (interfaces come and go).
    const local = localAddresses();
    for (const address of resolved.addresses) {
      const why = forbiddenAddress(address, local);
      if (why) return { allowed: false, conversation, reason: `${host} resolves to ${why}` };
    }
    const address = resolved.addresses[0];
    if (!address) return { allowed: false, conversation, reason: `${host} does not resolve` };
    return { allowed: true, conversation, address };
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

  /** A slot for one open request or tunnel of the conversation, or the refusal when it holds them all. */
  private slot(conversation: ConversationId | undefined): (() => void) | { reason: string } {
    return (
      this.open.take(conversation ?? '') ?? {
        reason: `this sandbox already has ${this.options.maxConnections} proxy connections open (SANDBOT_EGRESS_MAX_CONNECTIONS)`,
      }
    );
  }

  private async onConnect(req: IncomingMessage, client: Socket, head: Buffer): Promise<void> {
    const started = Date.now();
    const source = client.remoteAddress ?? '';
    const target = parseAuthority(req.url ?? '');
    client.on('error', () => client.destroy());
    const base = { source, method: 'CONNECT', started };
    if (!target)
      return this.refuse(
        { socket: client },
        { ...base, host: req.url ?? '', port: 0, reason: 'malformed CONNECT target' },
      );
    const where = { ...base, host: target.host, port: target.port };
    const decision = await this.decide(req.headers['proxy-authorization'], target.host, target.port);
    const release = decision.allowed ? this.slot(decision.conversation) : decision;
    if ('reason' in release) {
      return this.refuse(
        { socket: client },
        { ...where, reason: release.reason, conversation: decision.conversation },
      );
    }
    if (!decision.allowed) return;
    // The client sends its ClientHello only once told the tunnel is up: answer, then read it before
    // anything goes upstream.
    client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
    if (head.length) client.unshift(head);
    const hello = await peekHello(client, Math.min(10, this.options.maxSeconds) * 1000);
    const problem = 'error' in hello ? hello.error : sniProblem(target.host, hello);
    if (problem) {
      release();
      client.destroy();
      return this.record({ ...where, reason: problem, conversation: decision.conversation });
    }
    client.pause();
    const upstream = connect(target.port, decision.address);
    const meter = meterTunnel(client, upstream, this.options, () => {
      release();
      this.options.record({
        conversation: decision.conversation,
        source,
        method: 'CONNECT',
        host: target.host,
        port: target.port,
        allowed: true,
        bytesOut: meter.out,
        bytesIn: meter.in,
        durationMs: Date.now() - started,
      });
    });
    upstream.once('connect', () => {
      client.pipe(upstream);
      upstream.pipe(client);
    });
  }

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = Date.now();
    const source = req.socket.remoteAddress ?? '';
    let url: URL;
    try {
      url = new URL(req.url ?? '');
      if (url.protocol !== 'http:') throw new Error('not http');
    } catch {
      return this.refuse(
        { res: res },
        {
          source,
          method: req.method ?? '?',
          host: req.url ?? '',
          port: 0,
          started,
          reason: 'only absolute http:// URLs (or CONNECT) go through this proxy',
        },
      );
    }
    const port = Number(url.port || 80);
    const decision = await this.decide(req.headers['proxy-authorization'], url.hostname, port);
    const release = decision.allowed ? this.slot(decision.conversation) : decision;
    if ('reason' in release) {
      return this.refuse(
        { res: res },
        {
          source,
          method: req.method ?? '?',
          host: url.hostname,
          port,
          started,
          reason: release.reason,
          conversation: decision.conversation,
        },
      );
    }
    if (!decision.allowed) return;
    forwardPlain(req, res, url, decision.address, this.options, (bytes) => {
      release();
      this.options.record({
        conversation: decision.conversation,
        source,
        method: req.method ?? '?',
        host: url.hostname,
        port,
        allowed: true,
        ...bytes,
        durationMs: Date.now() - started,
      });
    });
  }

  /** Answers 403 with the reason (the agent reads it in its tool's output) and records the refusal. */
  private refuse(to: { socket: Socket } | { res: ServerResponse }, refusal: Refusal): void {
    const { host, port, reason } = refusal;
    const body = `sandbot egress proxy refused ${host}:${port}: ${reason}\n`;
    const header = reason.replace(/[\r\n]/g, ' ');
    if ('socket' in to) {
      to.socket.end(
        `HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nX-Sandbot-Refused: ${header}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
    } else {
      to.res.writeHead(403, {
        'content-type': 'text/plain',
        'x-sandbot-refused': header,
        connection: 'close',
      });
      to.res.end(body);
    }
    this.record(refusal);
  }

  /** Records a refusal. */
  private record({ started, ...rest }: Refusal): void {
    this.options.record({
      ...rest,
      allowed: false,
      bytesOut: 0,
      bytesIn: 0,
      durationMs: Date.now() - started,
    });
  }
}

interface Refusal {
  source: string;
  method: string;
  host: string;
  port: number;
  started: number;
  reason: string;
  conversation?: ConversationId;
}
