import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { AuditActor } from '../../contracts/audit/events.js';

/**
 * The console's security decisions, pure: the operator's name as the audit records it, the session
 * cookie, and which POSTs are let through (a session's CSRF token and an Origin that is this server).
 */

export const COOKIE_NAME = 'sandbot_console';
/** A session lasts this long from sign-in. */
export const SESSION_SECONDS = 12 * 3600;

/** A random id of 32 bytes (session ids, CSRF tokens). */
export function randomToken(): string {
  return randomBytes(32).toString('base64url');
}

/**
 * The operator's name as typed, made safe for the audit actor: no control characters (newlines would
 * forge log lines), spaces collapsed, at most 100 characters. Undefined when nothing is left.
 */
export function operatorName(raw: unknown): string | undefined {
  if (typeof raw !== 'string') return undefined;
  const name = raw
    .replace(/[\p{Cc}\p{Cf}\u2028\u2029]/gu, ' ')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, 100)
    .trim();
  return name === '' ? undefined : name;
}

/** The audit actor of every console action: `admin:console:<operator name>`. */
export function consoleActor(name: string): AuditActor {
  return AuditActor.parse(`admin:console:${name}`);
}

/** Compares in constant time (hashes first, so lengths do not leak either). */
export function sameSecret(presented: unknown, expected: string): boolean {
  if (typeof presented !== 'string' || presented === '') return false;
  const a = createHash('sha256').update(presented).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/**
 * Whether a POST's Origin header names this very server (scheme aside: a proxy in front may end TLS):
 * its host and port equal the Host header's. Missing, `null` or foreign → refused.
 */
export function originAllowed(origin: string | undefined, host: string | undefined): boolean {
  if (!origin || !host || origin === 'null') return false;
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return false;
  if (url.pathname !== '/' || url.username || url.password) return false;
  return url.host.toLowerCase() === normalHost(host, url.protocol);
}

/** The Host header as URL.host writes it (lower case, default port dropped). */
function normalHost(host: string, protocol: string): string {
  try {
    return new URL(`${protocol}//${host}`).host.toLowerCase();
  } catch {
    return '';
  }
}

export type PostVerdict = { ok: true } | { ok: false; status: 401 | 403; reason: string };

/** The checks of every console POST but sign-in, in order: a session, the Origin, the CSRF token. */
export function judgePost(input: {
  session: { csrf: string } | undefined;
  origin: string | undefined;
  host: string | undefined;
  csrf: unknown;
}): PostVerdict {
  if (!input.session)
    return { ok: false, status: 401, reason: 'not signed in (or the session ended): sign in again' };
  if (!originAllowed(input.origin, input.host)) {
    return { ok: false, status: 403, reason: 'refused: the request did not come from this console (Origin)' };
  }
  if (!sameSecret(input.csrf, input.session.csrf)) {
    return { ok: false, status: 403, reason: 'refused: missing or wrong CSRF token; reload the page' };
  }
  return { ok: true };
}

/** The session cookie: HttpOnly, SameSite=Strict, only under /console; Secure over https. */
export function sessionCookie(id: string, secure: boolean): string {
  return `${COOKIE_NAME}=${id}; Path=/console; HttpOnly; SameSite=Strict; Max-Age=${SESSION_SECONDS}${secure ? '; Secure' : ''}`;
}

export function clearedCookie(secure: boolean): string {
  return `${COOKIE_NAME}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0${secure ? '; Secure' : ''}`;
}

/** The session id from a Cookie header, or undefined. */
export function sessionIdFrom(cookieHeader: string | undefined): string | undefined {
  for (const part of (cookieHeader ?? '').split(';')) {
    const at = part.indexOf('=');
    if (at !== -1 && part.slice(0, at).trim() === COOKIE_NAME) {
      const value = part.slice(at + 1).trim();
      return /^[A-Za-z0-9_-]{20,100}$/.test(value) ? value : undefined;
    }
  }
  return undefined;
}

/** Where an action may send the browser back to: a console page, nothing else (no open redirect). */
export function backTo(raw: unknown): string {
  return typeof raw === 'string' && /^\/console(\/conversations\/[A-Za-z0-9%._-]{1,400})?$/.test(raw)
    ? raw
    : '/console';
}

/** The Content-Security-Policy of every console page: only its own nonce'd script and style. */
export function contentSecurityPolicy(nonce: string): string {
  return [
    "default-src 'none'",
    `script-src 'nonce-${nonce}'`,
    `style-src 'nonce-${nonce}'`,
    "img-src 'self' data:",
    "connect-src 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
  ].join('; ');
}
