import type { Config } from '../../src/contracts/config/schema.js';
import type { Place } from './payloads.js';

/** Who may use sandbot where, from config. Empty lists mean "no restriction". */
export interface AccessPolicy {
  guilds: string[];
  channels: string[];
  roles: string[];
  adminRole?: string;
}

export function accessPolicyFrom(config: Config): AccessPolicy {
  return {
    guilds: config.DISCORD_ALLOWED_GUILDS,
    channels: config.DISCORD_ALLOWED_CHANNELS,
    roles: config.DISCORD_ALLOWED_ROLES,
    ...(config.DISCORD_ADMIN_ROLE ? { adminRole: config.DISCORD_ADMIN_ROLE } : {}),
  };
}

export type AccessDecision =
  | { allowed: true }
  | { allowed: false; reason: 'dm' | 'guild' | 'channel' | 'role' | 'admin'; message: string };

/**
 * Whether a user with these roles may use sandbot in this place (`admin`: the admin-only commands).
 * A thread counts as its parent channel. A DM carries no guild and no roles, so DMs are refused while
 * guilds or roles are restricted; the channel list may still name a DM channel.
 */
export function decideAccess(
  policy: AccessPolicy,
  place: Place,
  roles: readonly string[],
  need: 'user' | 'admin' = 'user',
): AccessDecision {
  if (place.kind === 'dm') {
    if (policy.guilds.length > 0 || policy.roles.length > 0) {
      return refuse('dm', 'sandbot does not take direct messages here: use it in a server channel.');
    }
  } else if (policy.guilds.length > 0 && !policy.guilds.includes(place.guildId)) {
    return refuse('guild', 'sandbot is not enabled in this server.');
  }
  if (policy.channels.length > 0) {
    const channel = place.kind === 'thread' ? (place.parentId ?? place.channelId) : place.channelId;
    if (!policy.channels.includes(channel) && !policy.channels.includes(place.channelId)) {
      return refuse('channel', 'sandbot is not enabled in this channel.');
    }
  }
  const admin = isAdmin(policy, roles);
  if (policy.roles.length > 0 && !admin && !roles.some((r) => policy.roles.includes(r))) {
    return refuse('role', 'You need one of the roles allowed to use sandbot.');
  }
  if (need === 'admin' && !admin) {
    return refuse(
      'admin',
      policy.adminRole
        ? 'This command needs the sandbot admin role.'
        : 'This command needs an admin role, and none is configured (DISCORD_ADMIN_ROLE).',
    );
  }
  return { allowed: true };
}

export function isAdmin(policy: AccessPolicy, roles: readonly string[]): boolean {
  return policy.adminRole !== undefined && roles.includes(policy.adminRole);
}

function refuse(
  reason: Exclude<AccessDecision, { allowed: true }>['reason'],
  message: string,
): AccessDecision {
  return { allowed: false, reason, message };
}
