import { PermissionFlagsBits } from 'discord.js';
import { Snowflake } from './payloads.js';

/**
 * Exactly what sandbot does in a server: see channels, post and upload, start threads from messages
 * (which needs the message's history) and talk in them. Slash commands need the applications.commands
 * scope, not a permission; typing and editing its own messages need nothing more.
 */
export const BOT_PERMISSIONS =
  PermissionFlagsBits.ViewChannel |
  PermissionFlagsBits.SendMessages |
  PermissionFlagsBits.AttachFiles |
  PermissionFlagsBits.ReadMessageHistory |
  PermissionFlagsBits.CreatePublicThreads |
  PermissionFlagsBits.SendMessagesInThreads;

export const BOT_SCOPES = ['bot', 'applications.commands'] as const;

export function discordInviteUrl(applicationId: string): string {
  const id = Snowflake.parse(applicationId);
  const query = new URLSearchParams({
    client_id: id,
    scope: BOT_SCOPES.join(' '),
    permissions: BOT_PERMISSIONS.toString(),
  });
  return `https://discord.com/oauth2/authorize?${query.toString().replaceAll('+', '%20')}`;
}
