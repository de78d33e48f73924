import { z } from 'zod';
import type { AuditActor } from '../../contracts/audit/events.js';
import type { ConversationId } from '../../contracts/conversation/id.js';
import type { Logger } from '../../contracts/log/logger.js';
import { Grant } from '../../contracts/policy/network-policy.js';
import type { ConversationControl } from '../../shared/queue/conversation-control.js';

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

/**
 * Carries out an admin's `network …` words on a conversation and answers with what it has now (or why
 * the words were refused). A change is also logged at warn, for whoever reads the logs and not the audit.
 */
export async function runNetworkCommand(
  control: Pick<ConversationControl, 'allowNetwork' | 'networkOff' | 'network'>,
  logger: Logger,
  command: { conversation: ConversationId; words: readonly string[]; by: AuditActor },
): Promise<string> {
  const { conversation, by } = command;
  const network = parseNetworkCommand(command.words);
  if (network.action === 'invalid') return network.message;
  if (network.action === 'allow') await control.allowNetwork(conversation, network.grants, by);
  if (network.action === 'off') await control.networkOff(conversation, by);
  if (network.action !== 'show') {
    logger.warn({ audit: 'policy.change', conversation, by, network }, 'network policy changed');
  }
  const grants = await control.network.grantsFor(conversation);
  return `This conversation now has ${describeGrants(grants)}; it applies from its next turn.`;
}
