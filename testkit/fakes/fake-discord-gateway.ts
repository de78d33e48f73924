import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { type WebSocket, WebSocketServer } from 'ws';
import { snowflake } from './fake-discord-state.js';

/**
 * The gateway side of a fake Discord: a WebSocket server speaking the v10 gateway protocol as far as
 * discord.js uses it: HELLO, heartbeat/ACK, IDENTIFY → READY (+ GUILD_CREATE), RESUME → replay + RESUMED,
 * dispatches with sequence numbers. Events dispatched while the socket is down are kept for a RESUME.
 */

interface Session {
  id: string;
  seq: number;
  events: { s: number; t: string; d: unknown }[];
  socket?: WebSocket;
}

export interface GatewayHooks {
  token: string;
  /** READY's `d` for a new session, and the dispatches that follow it (GUILD_CREATE). */
  onIdentify(sessionId: string): { ready: Record<string, unknown>; after: { t: string; d: unknown }[] };
}

export class FakeGateway {
  readonly identifies: { intents: number }[] = [];
  readonly resumes: { sessionId: string; seq: number }[] = [];
  private readonly wss = new WebSocketServer({ noServer: true });
  private readonly sessions = new Map<string, Session>();
  private current?: Session;
  private held = false;
  private readonly waitingForHello: WebSocket[] = [];
  private readonly sockets = new Set<WebSocket>();

  constructor(
    server: Server,
    private readonly hooks: GatewayHooks,
  ) {
    server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
      this.wss.handleUpgrade(request, socket, head, (ws) => this.accept(ws));
    });
  }

  /** Sends a dispatch event on the current session (or keeps it for a RESUME while the socket is down). */
  dispatch(t: string, d: unknown): void {
    const session = this.current;
    if (!session) return;
    session.seq += 1;
    const event = { s: session.seq, t, d };
    session.events.push(event);
    session.socket?.send(JSON.stringify({ op: 0, ...event }));
  }

  /** Sockets open now. */
  openSockets(): number {
    return this.sockets.size;
  }

  /** Whether a session is connected and identified or resumed. */
  connected(): boolean {
    return this.current?.socket !== undefined;
  }

  /** Closes the client's socket with a close code, as Discord does (e.g. 4000 unknown error, 1000). */
  closeSocket(code: number): void {
    for (const ws of this.sockets) ws.close(code, 'fake discord closed the connection');
  }

  /** Drops the TCP connection without a close frame, as a network failure does. */
  dropSocket(): void {
    for (const ws of this.sockets) ws.terminate();
  }

  /** While held, new connections get no HELLO (the client sits waiting, as on a dead network). */
  hold(on: boolean): void {
    this.held = on;
    if (!on) for (const ws of this.waitingForHello.splice(0)) this.hello(ws);
  }

  close(): void {
    for (const ws of this.sockets) ws.terminate();
    this.wss.close();
  }

  private accept(ws: WebSocket): void {
    this.sockets.add(ws);
    ws.on('close', () => {
      this.sockets.delete(ws);
      for (const session of this.sessions.values()) if (session.socket === ws) session.socket = undefined;
    });
    ws.on('error', () => undefined);
    ws.on('message', (data) => this.receive(ws, String(data)));
    if (this.held) this.waitingForHello.push(ws);
    else this.hello(ws);
  }

  private hello(ws: WebSocket): void {
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ op: 10, d: { heartbeat_interval: 10_000 } }));
  }

  private receive(ws: WebSocket, text: string): void {
    let payload: { op?: number; d?: Record<string, unknown> | number | null };
    try {
      payload = JSON.parse(text);
    } catch {
      ws.close(4002, 'Error while decoding payload.');
      return;
    }
    const d = (typeof payload.d === 'object' && payload.d !== null ? payload.d : {}) as Record<
      string,
      unknown
    >;
    if (payload.op === 1) ws.send(JSON.stringify({ op: 11 }));
    else if (payload.op === 2) this.identify(ws, d);
    else if (payload.op === 6) this.resume(ws, d);
  }

  private identify(ws: WebSocket, d: Record<string, unknown>): void {
    if (d.token !== this.hooks.token) {
      ws.close(4004, 'Authentication failed.');
      return;
    }
    this.identifies.push({ intents: Number(d.intents) });
    const session: Session = { id: snowflake(), seq: 0, events: [], socket: ws };
    this.sessions.set(session.id, session);
    this.current = session;
    const { ready, after } = this.hooks.onIdentify(session.id);
    this.dispatch('READY', ready);
    for (const event of after) this.dispatch(event.t, event.d);
  }

  private resume(ws: WebSocket, d: Record<string, unknown>): void {
    const session = this.sessions.get(String(d.session_id));
    if (d.token !== this.hooks.token || !session || session !== this.current) {
      ws.send(JSON.stringify({ op: 9, d: false }));
      return;
    }
    const seq = Number(d.seq);
    this.resumes.push({ sessionId: session.id, seq });
    session.socket = ws;
    for (const event of session.events) if (event.s > seq) ws.send(JSON.stringify({ op: 0, ...event }));
    this.dispatch('RESUMED', {});
  }
}
