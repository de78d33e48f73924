import { connect as connectTcp, type Socket } from 'node:net';
import { connect as connectTls } from 'node:tls';
import { Redis } from 'ioredis';
import type { PostureFacts } from './posture.js';

/**
 * What the posture report knows of Redis: whether it answers a command sent without credentials (an
 * open door), and where it listens (CONFIG GET bind: only when the URL's user may, which setup's
 * `sandbot` user may not). Undefined when Redis cannot be reached at all: the doctor's Redis check says so.
 */
export async function probeRedisPosture(url: string, timeoutMs = 2000): Promise<PostureFacts['redis']> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return undefined;
  }
  const reply = await unauthenticatedReply(parsed, timeoutMs);
  if (reply === undefined) return undefined;
  const bind = await configuredBind(url, timeoutMs);
  return { open: isOpenReply(reply), ...(bind ? { bind } : {}) };
}

/** PONG to an unauthenticated PING: no password; NOAUTH (or protected mode's DENIED): closed. */
export const isOpenReply = (reply: string) => reply.startsWith('+PONG');

/** The first reply line to a PING sent without credentials, or undefined when nothing answered. */
function unauthenticatedReply(url: URL, timeoutMs: number): Promise<string | undefined> {
  const port = Number(url.port || 6379);
  const host = url.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1';
  return new Promise((resolve) => {
    const socket: Socket =
      url.protocol === 'rediss:'
        ? connectTls({ host, port, servername: host, rejectUnauthorized: false })
        : connectTcp({ host, port });
    let text = '';
    const done = (value: string | undefined) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(value);
    };
    const timer = setTimeout(() => done(undefined), timeoutMs);
    socket.once(url.protocol === 'rediss:' ? 'secureConnect' : 'connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
      const end = text.indexOf('\r\n');
      if (end >= 0) done(text.slice(0, end));
    });
    socket.on('error', () => done(undefined));
    socket.on('close', () => done(text || undefined));
  });
}

async function configuredBind(url: string, timeoutMs: number): Promise<string[] | undefined> {
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    commandTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    enableReadyCheck: false,
    retryStrategy: () => null,
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    const answer = (await client.call('CONFIG', 'GET', 'bind')) as string[];
    const value = answer[1];
    // An empty bind (Redis before 6.2 had no default) listens on every address.
    return value === undefined ? undefined : value.trim() ? value.trim().split(/\s+/) : ['*'];
  } catch {
    return undefined;
  } finally {
    client.disconnect();
  }
}
