import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import { type WebSocket, WebSocketServer } from 'ws';

/**
 * Slack's Socket Mode server: `apps.connections.open` hands out a URL here; on connect the server says
 * hello, then pushes envelopes (`events_api`, `slash_commands`, `interactive`) that the client acks with
 * `{envelope_id, payload}`. The client pings; `ws` answers pongs by itself.
 */
export class FakeSocketMode {
  baseUrl = '';
  /** While true, apps.connections.open fails (as when Slack is unreachable), so reconnects wait. */
  refusing = false;
  /** Connections ever accepted. */
  accepted = 0;
  /** apps.connections.open calls refused. */
  refused = 0;
  private readonly sockets = new Set<WebSocket>();
  private readonly wss = new WebSocketServer({ noServer: true });
  private readonly acks = new Map<string, (payload: unknown) => void>();
  private readonly tickets = new Set<string>();

  constructor(server: Server) {
    server.on('upgrade', (req, socket, head) => {
      const ticket = (req.url ?? '').replace(/^\/socket\//, '');
      if (!this.tickets.delete(ticket)) {
        socket.destroy();
        return;
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws));
    });
  }

  /** What apps.connections.open returns: a one-use URL, or undefined while refusing. */
  openUrl(): string | undefined {
    if (this.refusing) {
      this.refused += 1;
      return undefined;
    }
    const ticket = randomUUID();
    this.tickets.add(ticket);
    return `${this.baseUrl}/socket/${ticket}`;
  }

  get connected(): number {
    return [...this.sockets].filter((s) => s.readyState === s.OPEN).length;
  }

  private accept(ws: WebSocket): void {
    this.accepted += 1;
    this.sockets.add(ws);
    ws.on('close', () => this.sockets.delete(ws));
    ws.on('message', (data) => {
      let message: { envelope_id?: string; payload?: unknown };
      try {
        message = JSON.parse(String(data)) as typeof message;
      } catch {
        return;
      }
      if (message.envelope_id) this.acks.get(message.envelope_id)?.(message.payload ?? {});
    });
    ws.send(
      JSON.stringify({
        type: 'hello',
        num_connections: 1,
        connection_info: { app_id: 'A0FAKE' },
        debug_info: { host: 'fake' },
      }),
    );
  }

  /** Pushes one envelope to the connected client; resolves with the ack's payload. */
  send(
    type: 'events_api' | 'slash_commands' | 'interactive',
    payload: unknown,
    options: { retryAttempt?: number; retryReason?: string; timeoutMs?: number } = {},
  ): Promise<unknown> {
    const socket = [...this.sockets].find((s) => s.readyState === s.OPEN);
    if (!socket) return Promise.reject(new Error('fake slack: no Socket Mode client is connected'));
    const envelopeId = randomUUID();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.acks.delete(envelopeId);
        reject(new Error(`fake slack: envelope ${envelopeId} (${type}) was not acked`));
      }, options.timeoutMs ?? 3000);
      this.acks.set(envelopeId, (ack) => {
        clearTimeout(timer);
        this.acks.delete(envelopeId);
        resolve(ack);
      });
      socket.send(
        JSON.stringify({
          envelope_id: envelopeId,
          type,
          payload,
          accepts_response_payload: type !== 'events_api',
          retry_attempt: options.retryAttempt ?? 0,
          retry_reason: options.retryReason ?? '',
        }),
      );
    });
  }

  /** Cuts every connection without a close handshake, as a network failure would. */
  dropAll(): void {
    for (const socket of this.sockets) socket.terminate();
  }

  /** Asks clients to reconnect, as Slack does when it recycles a server. */
  askToReconnect(): void {
    for (const socket of this.sockets)
      socket.send(JSON.stringify({ type: 'disconnect', reason: 'refresh_requested' }));
  }

  async close(): Promise<void> {
    this.dropAll();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }
}
