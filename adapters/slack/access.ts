import type { Config } from '../../src/contracts/config/schema.js';

/** Who may talk to the agent, from config. An empty list means "no restriction" for that dimension. */
export interface AccessPolicy {
  teams: readonly string[];
  channels: readonly string[];
  users: readonly string[];
  admins: readonly string[];
}

export function accessPolicyFrom(
  config: Pick<
    Config,
    'SLACK_ALLOWED_TEAMS' | 'SLACK_ALLOWED_CHANNELS' | 'SLACK_ALLOWED_USERS' | 'SLACK_ADMIN_USERS'
  >,
): AccessPolicy {
  return {
    teams: config.SLACK_ALLOWED_TEAMS,
    channels: config.SLACK_ALLOWED_CHANNELS,
    users: config.SLACK_ALLOWED_USERS,
    admins: config.SLACK_ADMIN_USERS,
  };
}

export interface Requester {
  /** Every team the request names (the workspace, and the person's own in a shared channel). */
  teams: readonly string[];
  channel: string;
  user: string;
}

export type AccessDecision = { allowed: true } | { allowed: false; reason: 'team' | 'channel' | 'user' };

/** Admins pass the user allowlist, but not the workspace or channel ones: those bound where the bot works. */
export function decideAccess(policy: AccessPolicy, who: Requester): AccessDecision {
  const listed = (list: readonly string[], id: string) => list.length === 0 || list.includes(id);
  if (!who.teams.every((team) => listed(policy.teams, team))) return { allowed: false, reason: 'team' };
  if (!listed(policy.channels, who.channel)) return { allowed: false, reason: 'channel' };
  if (!listed(policy.users, who.user) && !policy.admins.includes(who.user)) {
    return { allowed: false, reason: 'user' };
  }
  return { allowed: true };
}

export function isAdmin(policy: AccessPolicy, user: string): boolean {
  return policy.admins.includes(user);
}

const WHERE: Record<'team' | 'channel' | 'user', string> = {
  team: 'this workspace is not',
  channel: 'this channel is not',
  user: 'you are not',
};

/** The one polite answer someone outside the allowlists gets. */
export function refusalText(reason: 'team' | 'channel' | 'user'): string {
  return `Sorry, I can't help here: ${WHERE[reason]} on sandbot's allowlist. Ask whoever runs sandbot if you need access.`;
}
