import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { ConversationId } from '../../contracts/conversation/id.js';
import { parseAuthority } from './addresses.js';
import { type Decision, EgressDecider, type EgressDeciderOptions } from './egress-decision.js';
import { forwardPlain, meterTunnel } from './forward.js';
import { Slots } from './limits.js';
import { peekHello, sniProblem } from './sni.js';

export type { Lookup } from './egress-decision.js';

export interface EgressRecord {
  conversation?: ConversationId;
  /** The skill whose credential made the request (absent: the sandbox's own credential, or none). */
  skill?: string;
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

export interface EgressProxyOptions extends EgressDeciderOptions {
  /** Called once per request, allowed or refused. */
  record(entry: EgressRecord): void;
  /** Bytes one request may move, both directions together. */
  maxBytes: number;
  /** Time one request may last. */
  maxSeconds: number;
  /** Requests and tunnels one conversation may have open at once. */
  maxConnections: number;
  /**
   * Also cap TCP connections (idle keep-alive ones too) per source address at maxConnections: on a bridge,
   * where each sandbox has its own address. Tunnelled, every sandbox comes from loopback (the tunnel caps
   * its own streams).
   */
  capPerSource?: boolean;
}

/**
 * The only way out of a sandbox: an HTTP proxy (plain requests and CONNECT tunnels) that goes only where
 * its decider (egress-decision.ts) allows, to the address the decider checked, lets a tunnel carry only
 * TLS to the CONNECT host (its SNI), caps bytes, time, open connections and pending lookups per sandbox,
 * and records every request.
 */
export class EgressProxy {
  private readonly server: Server;
  private readonly decider: EgressDecider;
  private readonly open: Slots;

  constructor(private readonly options: EgressProxyOptions) {
    this.decider = new EgressDecider(options);
    this.open = new Slots(options.maxConnections);
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

  decide(
    proxyAuthorization: string | undefined,
    host: string,
    port: number,
    sourcePort?: number,
  ): Promise<Decision> {
    return this.decider.decide(proxyAuthorization, host, port, sourcePort);
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
    const decision = await this.decide(
      req.headers['proxy-authorization'],
      target.host,
      target.port,
      client.remotePort,
    );
    const release = decision.allowed ? this.slot(decision.conversation) : decision;
    if ('reason' in release) {
      return this.refuse({ socket: client }, { ...where, reason: release.reason, ...who(decision) });
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
      return this.record({ ...where, reason: problem, ...who(decision) });
    }
    client.pause();
    const upstream = connect(target.port, decision.address);
    const meter = meterTunnel(client, upstream, this.options, () => {
      release();
      this.options.record({
        ...who(decision),
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
    const decision = await this.decide(
      req.headers['proxy-authorization'],
      url.hostname,
      port,
      req.socket.remotePort,
    );
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
          ...who(decision),
        },
      );
    }
    if (!decision.allowed) return;
    forwardPlain(req, res, url, decision.address, this.options, (bytes) => {
      release();
      this.options.record({
        ...who(decision),
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
  skill?: string;
}

/** Whose request a decision was about, for its record. */
function who(decision: Decision): Pick<EgressRecord, 'conversation' | 'skill'> {
  return {
    ...(decision.conversation ? { conversation: decision.conversation } : {}),
    ...(decision.skill ? { skill: decision.skill } : {}),
  };
}
