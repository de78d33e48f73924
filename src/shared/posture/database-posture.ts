import type { Config } from '../../contracts/config/schema.js';

/** A posture finding (posture.ts's Finding, which imports this module: not imported back). */
interface Finding {
  severity: 'high' | 'medium' | 'low';
  setting: string;
  what: string;
  fix: string;
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|\[::1\]|localhost)$/i;
/** sslmode values under which the client insists on TLS (prefer and allow fall back to clear text). */
const TLS_MODES = new Set(['require', 'verify-ca', 'verify-full']);

/**
 * The audit database (SANDBOT_DATABASE_URL): reached without a password (whoever can connect as the
 * role can rewrite history: the chain shows it, but cannot undo it), or beyond loopback in clear text.
 * A socket path (host=/run/postgresql) is local.
 */
export function databaseFindings(config: Pick<Config, 'SANDBOT_DATABASE_URL'>): Finding[] {
  const raw = config.SANDBOT_DATABASE_URL;
  if (!raw) return [];
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return [];
  }
  const host = url.searchParams.get('host') || decodeURIComponent(url.hostname) || 'localhost';
  const local = host.startsWith('/') || LOOPBACK.test(host);
  const found: Finding[] = [];
  if (!url.password) {
    found.push({
      severity: local ? 'medium' : 'high',
      setting: 'SANDBOT_DATABASE_URL',
      what: 'the audit database is reached without a password: whoever may connect as its role can rewrite the audit log',
      fix: 'give the role a password and put it in the URL (`bash scripts/setup-postgres.sh` does both)',
    });
  }
  const tls = TLS_MODES.has(url.searchParams.get('sslmode') ?? '') || url.searchParams.get('ssl') === 'true';
  if (!local && !tls) {
    found.push({
      severity: 'medium',
      setting: 'SANDBOT_DATABASE_URL',
      what: `the audit database is at ${host}, beyond loopback, without TLS: events and the password cross the network in clear`,
      fix: 'add ?sslmode=verify-full (with the server’s CA) to SANDBOT_DATABASE_URL, or reach it over loopback',
    });
  }
  return found;
}
