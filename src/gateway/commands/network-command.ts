import { z } from 'zod';
import { Grant } from '../../contracts/policy/network-policy.js';

export type NetworkCommand =
  | { action: 'show' }
  | { action: 'off' }
  | { action: 'allow'; grants: Grant[] }
  | { action: 'invalid'; message: string };

export const NETWORK_USAGE = 'network allow <host>[,<host>…] | network off | network (shows the grants)';

/**
 * Reads an admin's `network …` words (chat-platform neutral): `allow pypi.org *.github.com:443`, `off`,
 * or nothing. Words that are not hosts (a thread link, say) are the adapter's business and are skipped
 * by the caller before this is called.
 */
export function parseNetworkCommand(words: readonly string[]): NetworkCommand {
  const [action = 'show', ...rest] = words.map((w) => w.trim()).filter(Boolean);
  switch (action.toLowerCase()) {
    case 'show':
      return { action: 'show' };
    case 'off':
      return { action: 'off' };
    case 'allow': {
      const hosts = rest.flatMap((w) => w.split(',')).filter(Boolean);
      if (hosts.length === 0)
        return { action: 'invalid', message: `name at least one host: ${NETWORK_USAGE}` };
      const grants: Grant[] = [];
      for (const host of hosts) {
        const parsed = Grant.safeParse(host);
        if (!parsed.success)
          return {
            action: 'invalid',
            message: `"${host}" is not ${z.prettifyError(parsed.error).replace(/^✖ /, '').split('\n')[0]}`,
          };
        grants.push(parsed.data);
      }
      return { action: 'allow', grants };
    }
    default:
      return { action: 'invalid', message: `unknown network action "${action}": ${NETWORK_USAGE}` };
  }
}

export function describeGrants(grants: readonly string[]): string {
  return grants.length === 0 ? 'no network' : `network to ${grants.join(', ')} (through the egress proxy)`;
}
