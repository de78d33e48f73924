import type { Command } from 'commander';
import { sandboxDriverFromConfig } from '../../../sandbox/driver/from-config.js';
import { ConversationId } from '../../conversation/id.js';
import { loadConfigOrExit } from '../run-service.js';

function driverFromConfig() {
  return sandboxDriverFromConfig(loadConfigOrExit());
}

function conversationArg(value: string): ConversationId {
  const parsed = ConversationId.safeParse(value);
  if (!parsed.success) {
    console.error(`sandbot: "${value}" is not a conversation id (e.g. web:alice, slack:T1:C1:1700000000.1)`);
    process.exit(2);
  }
  return parsed.data;
}

export function registerSandboxCommands(program: Command): void {
  const sandbox = program.command('sandbox').description("list, stop and remove this instance's sandboxes");
  sandbox
    .command('ls')
    .description('list sandboxes (one per conversation)')
    .action(async () => {
      const rows = await driverFromConfig().list();
      if (rows.length === 0) return console.log('no sandboxes');
      console.log(['CONVERSATION', 'STATE', 'CREATED', 'CONTAINER'].join('\t'));
      for (const s of rows) console.log([s.conversation, s.state, s.createdAt, s.name].join('\t'));
    });
  sandbox
    .command('stop <conversation>')
    .description("stop a conversation's sandbox (its files stay; the next message starts it again)")
    .action(async (value: string) => {
      const stopped = await driverFromConfig().stop(conversationArg(value));
      console.log(stopped ? `stopped ${value}` : `no sandbox for ${value}`);
      if (!stopped) process.exitCode = 1;
    });
  sandbox
    .command('rm <conversation>')
    .description("remove a conversation's sandbox")
    .option('--wipe', 'also delete its /workspace and /session volumes')
    .action(async (value: string, options: { wipe?: boolean }) => {
      const removed = await driverFromConfig().remove(conversationArg(value), {
        wipe: options.wipe === true,
      });
      console.log(
        removed ? `removed ${value}${options.wipe ? ' and its volumes' : ''}` : `no sandbox for ${value}`,
      );
      if (!removed) process.exitCode = 1;
    });
}
