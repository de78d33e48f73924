import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/** The byte and time caps of one proxied request or tunnel. */
export interface Caps {
  maxBytes: number;
  maxSeconds: number;
}

/**
 * Forwards one plain http:// request to the address the proxy checked (the Host header keeps the name),
 * capped in bytes and time; `done` runs once with the bytes moved.
 */
export function forwardPlain(
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  address: string,
  caps: Caps,
  done: (bytes: { bytesOut: number; bytesIn: number }) => void,
): void {
  const headers: Record<string, string | string[] | undefined> = { ...req.headers, host: url.host };
  delete headers['proxy-connection'];
  delete headers['proxy-authorization'];
  const upstream = httpRequest({
    host: address,
    port: Number(url.port || 80),
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
    done({ bytesOut, bytesIn });
  };
  const deadline = setTimeout(() => {
    upstream.destroy(new Error(`no answer within ${caps.maxSeconds} s`));
    res.destroy();
  }, caps.maxSeconds * 1000);
  upstream.on('response', (answer) => {
    res.writeHead(answer.statusCode ?? 502, answer.headers);
    answer.on('data', (chunk: Buffer) => {
      bytesIn += chunk.length;
      if (bytesIn + bytesOut > caps.maxBytes) {
        // Cut both sides: the client sees the connection end before the answer is complete.
        answer.destroy();
        res.destroy();
      }
    });
    answer.pipe(res);
    answer.on('close', finish);
  });
  // The sandbox's side went away before the whole answer (its tool ended, its sandbox was killed): the
  // rest is not read for nobody, and the request's connection slot is released now, not at the caps.
  res.on('close', () => {
    if (!res.writableFinished) upstream.destroy();
  });
  upstream.on('error', (error) => {
    if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
    res.end(`sandbot egress proxy: ${url.hostname}: ${error.message}\n`);
    finish();
  });
  req.on('data', (chunk: Buffer) => {
    bytesOut += chunk.length;
    if (bytesOut > caps.maxBytes) req.destroy();
  });
  req.pipe(upstream);
}

/** Counts bytes both ways on a tunnel and cuts it past the byte or time cap; `done` runs once, at the end. */
export function meterTunnel(client: Socket, upstream: Socket, caps: Caps, done: () => void) {
  const counts = { in: 0, out: 0 };
  const cut = () => {
    client.destroy();
    upstream.destroy();
  };
  const timer = setTimeout(cut, caps.maxSeconds * 1000);
  client.on('data', (chunk: Buffer) => {
    counts.out += chunk.length;
    if (counts.in + counts.out > caps.maxBytes) cut();
  });
  upstream.on('data', (chunk: Buffer) => {
    counts.in += chunk.length;
    if (counts.in + counts.out > caps.maxBytes) cut();
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
