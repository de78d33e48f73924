import { connect, createServer, type Server, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Slots } from '../../src/worker/egress/limits.js';
import { peekHello, sniProblem } from '../../src/worker/egress/sni.js';

/** What the proxy sees of a tunnel: the server end of a connection a client writes `send` into. */
let server: Server;
let port = 0;
const accepted: ((socket: Socket) => void)[] = [];

beforeAll(async () => {
  server = createServer((socket) => accepted.shift()?.(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as { port: number }).port;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

async function peekFrom(send: (port: number) => Socket, ms = 2000) {
  const socket = new Promise<Socket>((resolve) => accepted.push(resolve));
  const client = send(port);
  client.on('error', () => undefined);
  const end = await socket;
  const hello = await peekHello(end, ms);
  // The hello's bytes are back on the socket, unread: the tunnel forwards them unchanged.
  const again = await new Promise<Buffer>((resolve) => end.once('data', resolve));
  client.destroy();
  end.destroy();
  return { hello, again };
}

describe('the ClientHello of a CONNECT tunnel', () => {
  it('reads the SNI of a real TLS client and puts the record back', async () => {
    const { hello, again } = await peekFrom((p) =>
      tlsConnect({ host: '127.0.0.1', port: p, servername: 'api.example.com' }),
    );
    expect(hello).toEqual({ serverNames: ['api.example.com'], encrypted: false });
    expect(again[0]).toBe(0x16);
    if ('error' in hello) throw new Error(hello.error);
    expect(sniProblem('api.example.com', hello)).toBeUndefined();
    expect(sniProblem('API.example.com.', hello)).toBeUndefined();
    expect(sniProblem('cdn.example.com', hello)).toMatch(/"api.example.com" is not the CONNECT host/);
  });

  it('refuses a missing SNI for a name, and any SNI for an IP literal', async () => {
    const { hello } = await peekFrom((p) => tlsConnect({ host: '127.0.0.1', port: p }));
    expect(hello).toEqual({ serverNames: [], encrypted: false });
    if ('error' in hello) throw new Error(hello.error);
    expect(sniProblem('api.example.com', hello)).toMatch(/names no server/);
    expect(sniProblem('198.51.100.7', hello)).toBeUndefined();
    expect(sniProblem('198.51.100.7', { serverNames: ['x.example'], encrypted: false })).toMatch(
      /not the CONNECT address/,
    );
    expect(sniProblem('a.example', { serverNames: ['a.example', 'b.example'], encrypted: false })).toMatch(
      /more than one/,
    );
    expect(sniProblem('a.example', { serverNames: ['a.example'], encrypted: true })).toMatch(/Encrypted/);
  });

  it('refuses plain text and a client that sends nothing, in bounded time', async () => {
    const plain = await peekFrom((p) => {
      const s = connect(p, '127.0.0.1');
      s.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
      return s;
    });
    expect(plain.hello).toMatchObject({ error: expect.stringMatching(/CONNECT carries TLS only/) });
    const socket = new Promise<Socket>((resolve) => accepted.push(resolve));
    const silent = connect(port, '127.0.0.1');
    const started = Date.now();
    expect(await peekHello(await socket, 300)).toEqual({ error: 'no TLS ClientHello within 0.3 s' });
    expect(Date.now() - started).toBeLessThan(2000);
    silent.destroy();
  });
});

describe('per-sandbox slots', () => {
  it('holds at most max per key, and a release frees one once', () => {
    const slots = new Slots(2);
    const a = slots.take('web:a');
    const b = slots.take('web:a');
    expect(a && b).toBeTruthy();
    expect(slots.take('web:a')).toBeUndefined();
    expect(slots.take('web:b')).toBeDefined();
    a?.();
    a?.();
    expect(slots.count('web:a')).toBe(1);
    expect(slots.take('web:a')).toBeDefined();
  });
});
