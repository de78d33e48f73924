import { isIP, type Socket } from 'node:net';
import { readTlsClientHello, type TlsClientHelloMessage } from 'read-tls-client-hello';

/** What a CONNECT tunnel's first TLS record says about the server it is meant for. */
export interface HelloNames {
  /** The server_name of each SNI extension (a well-formed hello has at most one). */
  serverNames: (string | undefined)[];
  /** Whether it carries Encrypted Client Hello, which hides the real server name. */
  encrypted: boolean;
}

const SNI = 0x0000;
const ECH = 0xfe0d;

export function helloNames(hello: TlsClientHelloMessage): HelloNames {
  const sni = hello.extensions.filter((e) => e.id === SNI);
  return {
    serverNames: sni.map((e) => {
      const name = (e.data as { serverName?: unknown } | null)?.serverName;
      return typeof name === 'string' ? name : undefined;
    }),
    encrypted: hello.extensions.some((e) => e.id === ECH),
  };
}

/**
 * Why a tunnel to `host` may not carry this ClientHello, or undefined when it may: its SNI must name the
 * CONNECT host exactly (else a granted CDN name fronts for any site behind the CDN). A tunnel to an IP
 * literal carries no SNI (names in SNI are never IP addresses).
 */
export function sniProblem(host: string, hello: HelloNames): string | undefined {
  if (hello.encrypted) return 'the TLS ClientHello uses Encrypted Client Hello, which hides the server name';
  if (hello.serverNames.length > 1) return 'the TLS ClientHello names more than one server';
  const given = hello.serverNames[0];
  if (isIP(host)) {
    return given === undefined
      ? undefined
      : `the TLS server name "${given}" is not the CONNECT address ${host}`;
  }
  if (given === undefined)
    return `the TLS ClientHello names no server (SNI), so it could be any site at ${host}`;
  const name = given.toLowerCase().replace(/\.$/, '');
  return name === host.toLowerCase().replace(/\.$/, '')
    ? undefined
    : `the TLS server name "${given.slice(0, 253)}" is not the CONNECT host ${host}`;
}

/**
 * Reads the tunnel's first TLS record (one record: at most 64 KiB, the record header's limit) within `ms`
 * and puts its bytes back on the socket, so they go upstream unchanged once the tunnel is allowed.
 * Not TLS, not a ClientHello, or too slow: the reason.
 */
export async function peekHello(socket: Socket, ms: number): Promise<HelloNames | { error: string }> {
  let timer: NodeJS.Timeout | undefined;
  let gone: (() => void) | undefined;
  const late = new Promise<{ error: string }>((resolve) => {
    timer = setTimeout(() => resolve({ error: `no TLS ClientHello within ${ms / 1000} s` }), ms);
    // The proxy's sockets are half-open: a client that ends its side never "closes" on its own.
    gone = () => resolve({ error: 'the client ended the tunnel before its ClientHello' });
    socket.once('end', gone);
  });
  try {
    return await Promise.race([
      readTlsClientHello(socket).then(helloNames, (error: Error) => ({
        error: `the tunnel does not start with a TLS ClientHello (${error.message}); CONNECT carries TLS only`,
      })),
      late,
    ]);
  } finally {
    clearTimeout(timer);
    if (gone) socket.off('end', gone);
  }
}
