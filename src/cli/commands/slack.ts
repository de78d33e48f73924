import type { Command } from 'commander';

export function registerSlackCommands(program: Command): void {
  const slack = program.command('slack').description('Slack app set-up');
  slack
    .command('manifest')
    .description('print the Slack app manifest (Socket Mode unless --public-url is given)')
    .option('--public-url <url>', 'the gateway’s public base URL, for the HTTP Events API')
    .option('--name <name>', 'app name', 'sandbot')
    .action(async (options: { publicUrl?: string; name: string }) => {
      const { slackManifest } = await import('../../../adapters/slack/manifest.js');
      const manifest = slackManifest({
        socketMode: !options.publicUrl,
        publicUrl: options.publicUrl,
        name: options.name,
      });
      console.log(JSON.stringify(manifest, null, 2));
    });
}
