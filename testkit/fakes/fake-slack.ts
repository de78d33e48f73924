import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { closeServer } from './close-server.js';
import { type Answer, type Args, FakeSlackWorkspace } from './fake-slack-api.js';
import { FakeSocketMode } from './fake-slack-socket.js';

export type { FakeMessage, FakeUpload } from './fake-slack-api.js';

/**
 * A local fake of Slack's servers that keeps state: the Web API methods the adapter and Bolt call
 * (`/api/<method>`, form or JSON bodies, `Authorization: Bearer`, `{ok:false,error}` answers with
 * HTTP 200 as Slack does, 429 with Retry-After on demand), the upload URLs `files.uploadV2` posts to,
 * private file downloads (a sign-in page without the bot token, as Slack does), response_urls, and a
 * Socket Mode WebSocket server behind `apps.connections.open`.
 */

export interface FakeCall {
  method: string;
  args: Record<string, unknown>;
  at: number;
  status: number;
}

export interface Failure {
  /** HTTP status; 429 comes with `Retry-After: retryAfter` (seconds). */
  status?: number;
  retryAfter?: number;
  /** Slack's `{ok:false, error}` with HTTP 200. */
  error?: string;
}

export class FakeSlack extends FakeSlackWorkspace {
  url = '';
  readonly responses: Args[] = [];
  readonly calls: FakeCall[] = [];
  readonly socket: FakeSocketMode;
  private readonly hosted = new Map<string, { name: string; bytes: Buffer; mimetype: string }>();
  private readonly failures = new Map<string, Failure[]>();
  private readonly holds = new Map<string, Promise<void>>();
  private readonly held = new Map<string, number>();
  private readonly server = createServer((req, res) => {
    this.handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) send(res, 500, { ok: false, error: `fake slack: ${String(error)}` });
    });
  });

  constructor() {
    super();
    this.socket = new FakeSocketMode(this.server);
  }

  protected baseUrl(): string {
    return this.url;
  }

  protected openSocketUrl(): string | undefined {
    return this.socket.openUrl();
  }

  get apiUrl(): string {
    return `${this.url}/api/`;
  }

  async listen(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    this.socket.baseUrl = this.url.replace(/^http/, 'ws');
    return this;
  }

  async close(): Promise<void> {
    await this.socket.close();
    await closeServer(this.server);
  }

  /** Makes the next call(s) of a method fail, in order. */
  failNext(method: string, ...failures: Failure[]): void {
    this.failures.set(method, [...(this.failures.get(method) ?? []), ...failures]);
  }

  /** Holds every call of a method (unanswered) until the returned function is called. */
  hold(method: string): () => void {
    let release: () => void = () => undefined;
    this.holds.set(
      method,
      new Promise<void>((resolve) => {
        release = resolve;
      }),
    );
    return () => {
      this.holds.delete(method);
      release();
    };
  }

  /** Calls of a method being held now. */
  heldCalls(method: string): number {
    return this.held.get(method) ?? 0;
  }

  /** A file Slack hosts, as a message event's `files` entry shows it. */
  hostFile(name: string, bytes: Buffer, options: { mimetype?: string; size?: number } = {}) {
    this.counter += 1;
    const id = `F0IN${this.counter}`;
    const mimetype = options.mimetype ?? 'text/plain';
    this.hosted.set(id, { name, bytes, mimetype });
    const url = `${this.url}/files-pri/${this.team}-${id}/${encodeURIComponent(name)}`;
    return {
      id,
      name,
      title: name,
      mimetype,
      size: options.size ?? bytes.length,
      mode: 'hosted',
      url_private: url,
      url_private_download: `${url}?download=1`,
    };
  }

  responseUrl(): string {
    this.counter += 1;
    return `${this.url}/respond/${this.counter}`;
  }

  callsOf(method: string): FakeCall[] {
    return this.calls.filter((c) => c.method === method);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = decodeURIComponent((req.url ?? '/').split('?')[0] ?? '/');
    const raw = await readBody(req);
    if (path.startsWith('/api/')) {
      const method = path.slice('/api/'.length);
      const args = parseArgs(raw, req.headers['content-type']);
      const hold = this.holds.get(method);
      if (hold) {
        this.held.set(method, (this.held.get(method) ?? 0) + 1);
        await hold;
        this.held.set(method, (this.held.get(method) ?? 1) - 1);
      }
      const token = bearer(req) ?? (args.token as string | undefined);
      const answer = this.injected(method) ?? this.answer(method, args, token);
      this.calls.push({ method, args, at: Date.now(), status: answer.status ?? 200 });
      const scopes: Record<string, string> =
        token === this.botToken ? { 'x-oauth-scopes': this.scopes.join(',') } : {};
      return send(res, answer.status ?? 200, answer.body, { ...scopes, ...answer.headers });
    }
    if (path.startsWith('/upload/')) return this.receiveUpload(path.slice('/upload/'.length), raw, req, res);
    if (path.startsWith('/files-pri/')) return this.serveFile(path, req, res);
    if (path.startsWith('/respond/')) {
      this.responses.push({ ...(JSON.parse(raw.toString() || '{}') as Args), url: `${this.url}${path}` });
      return send(res, 200, 'ok');
    }
    send(res, 404, 'not found');
  }

  private injected(method: string): Answer | undefined {
    const failure = this.failures.get(method)?.shift();
    if (failure?.status === 429) {
      return {
        status: 429,
        headers: { 'retry-after': String(failure.retryAfter ?? 1) },
        body: { ok: false, error: 'ratelimited' },
      };
    }
    if (failure?.status) return { status: failure.status, body: 'fake slack: injected failure' };
    if (failure?.error) return { body: { ok: false, error: failure.error } };
    return undefined;
  }

  private async receiveUpload(
    id: string,
    raw: Buffer,
    req: IncomingMessage,
    res: ServerResponse,
  ): Promise<void> {
    const upload = this.pendingUploads.get(id);
    if (!upload) return send(res, 404, 'unknown upload');
    // The web client posts the bytes as multipart form data (a single part).
    const form = await new Request('http://fake/', {
      method: 'POST',
      headers: { 'content-type': String(req.headers['content-type']) },
      body: new Uint8Array(raw),
    }).formData();
    const part = [...form.values()].find((v): v is File => typeof v !== 'string');
    upload.bytes = part ? Buffer.from(await part.arrayBuffer()) : raw;
    send(res, 200, `OK - ${upload.bytes.length}`);
  }

  private serveFile(path: string, req: IncomingMessage, res: ServerResponse): void {
    const id = path.split('/')[2]?.replace(`${this.team}-`, '') ?? '';
    const file = this.hosted.get(id);
    if (!file) {
      send(res, 404, 'not found');
      return;
    }
    if (bearer(req) !== this.botToken) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end('<html><body>Sign in to Slack</body></html>');
      return;
    }
    res.writeHead(200, { 'content-type': file.mimetype, 'content-length': file.bytes.length });
    res.end(file.bytes);
  }
}

export async function startFakeSlack(): Promise<FakeSlack> {
  return new FakeSlack().listen();
}

/** Polls until `check` returns a value other than undefined/false, or fails naming what it waited for. */
export async function waitFor<T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

function bearer(req: IncomingMessage): string | undefined {
  return /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
}

function parseArgs(raw: Buffer, contentType: string | undefined): Args {
  const text = raw.toString();
  if (text === '') return {};
  if (contentType?.includes('application/json')) return JSON.parse(text) as Args;
  return Object.fromEntries(new URLSearchParams(text));
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function send(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const json = typeof body !== 'string';
  res.writeHead(status, {
    'content-type': json ? 'application/json; charset=utf-8' : 'text/plain',
    ...headers,
  });
  res.end(json ? JSON.stringify(body) : body);
}
