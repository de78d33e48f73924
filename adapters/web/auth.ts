import { createHash, timingSafeEqual } from 'node:crypto';

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

/** Whether a bind address only accepts connections from this machine. */
export function isLoopback(bindHost: string): boolean {
  return LOOPBACK_NAMES.has(bindHost) || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(bindHost);
}

/**
 * DNS-rebinding guard: a server bound to loopback must only answer requests addressed to a loopback
 * name, or any web page the user visits could rebind its own domain to 127.0.0.1 and drive the agent.
 * A server bound to another address is reachable by other names by design, so the guard is off.
 */
export function hostAllowed(hostHeader: string | undefined, bindHost: string): boolean {
  if (!isLoopback(bindHost)) return true;
  if (hostHeader === undefined) return false;
  const name = hostHeader.startsWith('[')
    ? hostHeader.slice(0, hostHeader.indexOf(']') + 1)
    : hostHeader.split(':')[0];
  return name !== undefined && isLoopback(name.toLowerCase());
}
