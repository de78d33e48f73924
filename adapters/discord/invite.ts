import type { Command } from 'commander';
import { PermissionFlagsBits } from 'discord.js';
import { loadConfigOrExit } from '../../src/cli/run-service.js';
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

/** `sandbot discord invite`: prints the URL that adds the bot to a server with those permissions. */
export function registerDiscordCommands(program: Command): void {
  const discord = program.command('discord').description('Discord set-up help');
  discord
    .command('invite')
    .description('print the URL that adds sandbot to a Discord server, with exactly the permissions it needs')
    .option('--application-id <id>', 'the application id (default: DISCORD_APPLICATION_ID)')
    .action((options: { applicationId?: string }) => {
      const applicationId = options.applicationId ?? loadConfigOrExit().DISCORD_APPLICATION_ID;
      if (!applicationId || !Snowflake.safeParse(applicationId).success) {
        console.error(
          'sandbot: set DISCORD_APPLICATION_ID (or pass --application-id): the "Application ID" on the General Information page of your application at https://discord.com/developers/applications',
        );
        process.exitCode = 2;
        return;
      }
      console.log(discordInviteUrl(applicationId));
    });
}
