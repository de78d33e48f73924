import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Config } from '../contracts/config/schema.js';

/** Compares in constant time; hashing first makes the lengths equal, so length does not leak either. */
export function tokenMatches(presented: string | undefined, expected: string): boolean {
  if (presented === undefined) return false;
  const a = createHash('sha256').update(presented).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/** The token of an `Authorization: Bearer <token>` header, or undefined. */
export function bearerToken(header: string | undefined): string | undefined {
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header ?? '');
  return match?.[1];
}

const LOOPBACK_NAMES = new Set(['localhost', '127.0.0.1', '::1', '[::1]']);
/** Bind addresses that mean "every interface": no name of their own to answer to. */
const WILDCARDS = new Set(['0.0.0.0', '::', '[::]']);

/** Whether a bind address only accepts connections from this machine. */
export function isLoopback(bindHost: string): boolean {
  return LOOPBACK_NAMES.has(bindHost) || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(bindHost);
}

/** The name part of a Host header (`[::1]:8787` → `[::1]`, `Example.org:80` → `example.org`). */
function hostName(hostHeader: string): string {
  const name = hostHeader.startsWith('[')
    ? hostHeader.slice(0, hostHeader.indexOf(']') + 1)
    : (hostHeader.split(':')[0] ?? '');
  return name.toLowerCase();
}

/**
 * DNS-rebinding guard, on every bind address: any web page the user visits could rebind its own
 * domain to this server's address and drive the agent from the user's browser, so only requests
 * addressed to a loopback name, the bind address itself or a name in SANDBOT_HTTP_ALLOWED_HOSTS are
 * answered.
 */
export function hostAllowed(
  hostHeader: string | undefined,
  bindHost: string,
  allowedHosts: readonly string[] = [],
): boolean {
  if (hostHeader === undefined || hostHeader === '') return false;
  const name = hostName(hostHeader);
  if (name === '') return false;
  if (isLoopback(name)) return true;
  const bind = bindHost.toLowerCase();
  if (!WILDCARDS.has(bind) && (name === bind || name === `[${bind}]`)) return true;
  return allowedHosts.some((allowed) => hostName(bracketed(allowed)) === name);
}

/** A bare IPv6 address in a setting (`fd00::1`) as a Host header writes it (`[fd00::1]`). */
function bracketed(entry: string): string {
  return !entry.startsWith('[') && entry.split(':').length > 2 ? `[${entry}]` : entry;
}

export type DoorSettings = Pick<
  Config,
  'SANDBOT_HTTP_HOST' | 'SANDBOT_HTTP_ALLOWED_HOSTS' | 'SANDBOT_API_TOKEN'
>;

export interface DoorOptions {
  /** Whether this route needs the API token (when false it is open to any allowed Host). */
  tokenRequired: boolean;
  /** The token may also come as `?token=` (EventSource cannot send headers). */
  queryToken?: boolean;
}

/**
 * The Host guard, then the API token, for one request: the refusal to send, or undefined to go on. A
 * route that needs the token when none is configured refuses everyone (fail closed).
 */
export async function guardDoor(
  request: FastifyRequest,
  reply: FastifyReply,
  settings: DoorSettings,
  options: DoorOptions,
): Promise<FastifyReply | undefined> {
  const host = settings.SANDBOT_HTTP_HOST;
  if (!hostAllowed(request.headers.host, host, settings.SANDBOT_HTTP_ALLOWED_HOSTS)) {
    return refuse(
      reply,
      403,
      'this server answers only to localhost names, its bind address and SANDBOT_HTTP_ALLOWED_HOSTS (DNS-rebinding guard)',
    );
  }
  if (!options.tokenRequired) return undefined;
  const token = settings.SANDBOT_API_TOKEN;
  const presented =
    bearerToken(request.headers.authorization) ?? (options.queryToken ? queryToken(request) : undefined);
  if (token !== undefined && tokenMatches(presented, token)) return undefined;
  reply.header('www-authenticate', 'Bearer');
  return refuse(
    reply,
    401,
    options.queryToken
      ? 'missing or wrong API token: send "Authorization: Bearer <token>" or add ?token=<token>'
      : 'missing or wrong API token: send "Authorization: Bearer <token>" (the SANDBOT_API_TOKEN)',
  );
}

/** Whether /readyz and /metrics need the token: only where other machines can reach them. */
export function probesNeedToken(settings: Pick<Config, 'SANDBOT_HTTP_HOST'>): boolean {
  return !isLoopback(settings.SANDBOT_HTTP_HOST);
}

function queryToken(request: FastifyRequest): string | undefined {
  const token = (request.query as Record<string, unknown> | undefined)?.token;
  return typeof token === 'string' ? token : undefined;
}

// As sendError (http-server.ts), which imports this module.
function refuse(reply: FastifyReply, status: number, error: string): FastifyReply {
  return reply.code(status).type('application/json; charset=utf-8').send({ error });
}
