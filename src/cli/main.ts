#!/usr/bin/env node
import { Command } from 'commander';
import { startGateway } from '../gateway/start-gateway.js';
import { startWorker } from '../worker/start-worker.js';
import { registerAuditCommands } from './commands/audit.js';
import { registerDiscordCommands } from './commands/discord.js';
import { registerDoctorCommand } from './commands/doctor.js';
import { registerImageCommands } from './commands/image.js';
import { registerSandboxCommands } from './commands/sandbox.js';
import { registerSkillCommands } from './commands/skill.js';
import { registerSlackCommands } from './commands/slack.js';
import { registerVmCommands } from './commands/vm.js';
import { runService } from './run-service.js';

const program = new Command('sandbot')
  .description('Autonomous AI agents for Slack, Discord and web chat, each conversation in its own sandbox.')
  .showHelpAfterError();

program
  .command('up')
  .description('run the gateway and a worker in one process (one machine)')
  .action(() =>
    runService(async (config, logger) => {
      const worker = await startWorker(config, logger);
      const gateway = await startGateway(config, logger);
      console.log(`sandbot is up: ${gateway.url}`);
      return [gateway, worker];
    }),
  );
program
  .command('gateway')
  .description('run the gateway: chat adapters, web chat, delivery of replies')
  .action(() => runService(async (config, logger) => [await startGateway(config, logger)]));
program
  .command('worker')
  .description('run a worker: sandboxes, model broker, turns')
  .action(() => runService(async (config, logger) => [await startWorker(config, logger)]));

registerAuditCommands(program);
registerDoctorCommand(program);
registerImageCommands(program);
registerSandboxCommands(program);
registerSkillCommands(program);
registerSlackCommands(program);
registerDiscordCommands(program);
registerVmCommands(program);

await program.parseAsync(process.argv);
