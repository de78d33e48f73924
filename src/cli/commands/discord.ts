import type { Command } from 'commander';
import { loadConfigOrExit } from '../run-service.js';

/** `sandbot discord invite`: prints the URL that adds the bot to a server with those permissions. */
export function registerDiscordCommands(program: Command): void {
  const discord = program.command('discord').description('Discord set-up help');
  discord
    .command('invite')
    .description('print the URL that adds sandbot to a Discord server, with exactly the permissions it needs')
    .option('--application-id <id>', 'the application id (default: DISCORD_APPLICATION_ID)')
    .action(async (options: { applicationId?: string }) => {
      // discord.js loads only for this command (it costs start-up time and memory everywhere else).
      const { discordInviteUrl } = await import('../../../adapters/discord/invite.js');
      const { Snowflake } = await import('../../../adapters/discord/payloads.js');
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
