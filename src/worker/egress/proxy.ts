import { lookup as dnsLookup } from 'node:dns/promises';
import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { connect, isIP, type Socket } from 'node:net';
import type { ConversationId } from '../../contracts/conversation/id.js';
import { forbiddenAddress, type Grant, isGranted } from '../../contracts/policy/network-policy.js';
import { localAddresses, parseAuthority } from './addresses.js';

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
}

type Decision =
  | { allowed: true; address: string }
  | { allowed: false; reason: string; conversation?: ConversationId };

/**
 * The only way out of a sandbox: an HTTP proxy (plain requests and CONNECT tunnels) that allows only the
 * hosts granted to the sandbox's conversation, resolves names itself and connects to the address it
 * checked (so a name cannot be re-pointed between check and use), refuses private, loopback, link-local
 * and metadata addresses whatever the name, caps bytes and time, and records every request.
 */
export class EgressProxy {
  private readonly server: Server;
  private readonly lookup: Lookup;

  constructor(private readonly options: EgressProxyOptions) {
    this.lookup = options.lookup ?? ((host) => dnsLookup(host, { all: true, verbatim: true }));
    this.server = createServer((req, res) => void this.onRequest(req, res));
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
    let addresses: string[];
    try {
      addresses = isIP(host) ? [host] : (await this.lookup(host)).map((a) => a.address);
    } catch {
      return { allowed: false, conversation, reason: `${host} does not resolve` };
    }
    // Every address must be public and not the host's own: a name that also resolves to such an address
    // is refused outright. The host's addresses are read per request (interfaces come and go).
    const local = localAddresses();
    for (const address of addresses) {
      const why = forbiddenAddress(address, local);
      if (why) return { allowed: false, conversation, reason: `${host} resolves to ${why}` };
    }
    const address = addresses[0];
    if (!address) return { allowed: false, conversation, reason: `${host} does not resolve` };
    return { allowed: true, conversation, address };
  }

  private async onConnect(req: IncomingMessage, client: Socket, head: Buffer): Promise<void> {
    const started = Date.now();
    const source = client.remoteAddress ?? '';
    const target = parseAuthority(req.url ?? '');
    client.on('error', () => client.destroy());
    if (!target)
      return this.refuse(
        { socket: client },
        {
          source,
          method: 'CONNECT',
          host: req.url ?? '',
          port: 0,
          started,
          reason: 'malformed CONNECT target',
        },
      );
    const decision = await this.decide(req.headers['proxy-authorization'], target.host, target.port);
    if (!decision.allowed) {
      return this.refuse(
        { socket: client },
        {
          source,
          method: 'CONNECT',
          host: target.host,
          port: target.port,
          started,
          reason: decision.reason,
          conversation: decision.conversation,
        },
      );
    }
    const upstream = connect(target.port, decision.address);
    const meter = this.meter(client, upstream, () =>
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
      }),
    );
    upstream.once('connect', () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length) upstream.write(head);
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
    if (!decision.allowed) {
      return this.refuse(
        { res: res },
        {
          source,
          method: req.method ?? '?',
          host: url.hostname,
          port,
          started,
          reason: decision.reason,
          conversation: decision.conversation,
        },
      );
    }
    const headers: Record<string, string | string[] | undefined> = { ...req.headers, host: url.host };
    delete headers['proxy-connection'];
    delete headers['proxy-authorization'];
    const upstream = httpRequest({
      host: decision.address,
      port,
      method: req.method,
      path: url.pathname + url.search,
      headers,
    });
    let bytesIn = 0;
    let bytesOut = 0;
    let recorded = false;
    const finish = () => {
      if (recorded) return;
      recorded = true;
      clearTimeout(deadline);
      this.options.record({
        conversation: decision.conversation,
        source,
        method: req.method ?? '?',
        host: url.hostname,
        port,
        allowed: true,
        bytesOut,
        bytesIn,
        durationMs: Date.now() - started,
      });
    };
    const deadline = setTimeout(() => {
      upstream.destroy(new Error(`no answer within ${this.options.maxSeconds} s`));
      res.destroy();
    }, this.options.maxSeconds * 1000);
    upstream.on('response', (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.on('data', (chunk: Buffer) => {
        bytesIn += chunk.length;
        if (bytesIn + bytesOut > this.options.maxBytes) {
          // Cut both sides: the client sees the connection end before the answer is complete.
          answer.destroy();
          res.destroy();
        }
      });
      answer.pipe(res);
      answer.on('close', finish);
    });
    upstream.on('error', (error) => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`sandbot egress proxy: ${url.hostname}: ${error.message}\n`);
      finish();
    });
    req.on('data', (chunk: Buffer) => {
      bytesOut += chunk.length;
      if (bytesOut > this.options.maxBytes) req.destroy();
    });
    req.pipe(upstream);
  }

  /** Counts bytes both ways on a tunnel and cuts it past the byte or time cap. */
  private meter(client: Socket, upstream: Socket, done: () => void) {
    const counts = { in: 0, out: 0 };
    const cut = () => {
      client.destroy();
      upstream.destroy();
    };
    const timer = setTimeout(cut, this.options.maxSeconds * 1000);
    client.on('data', (chunk: Buffer) => {
      counts.out += chunk.length;
      if (counts.in + counts.out > this.options.maxBytes) cut();
    });
    upstream.on('data', (chunk: Buffer) => {
      counts.in += chunk.length;
      if (counts.in + counts.out > this.options.maxBytes) cut();
    });
    let finished = false;
    const end = () => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      cut();
      done();
    };
    client.on('close', end);
    upstream.on('close', end);
    upstream.on('error', () => end());
    return counts;
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
    const { started, ...rest } = refusal;
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
