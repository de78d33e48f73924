#!/usr/bin/env node
import { Command } from 'commander';
import { registerAuditCommands } from './commands/audit.js';
import { registerDiscordCommands } from './commands/discord.js';
import { registerDoctorCommand } from './commands/doctor.js';
import { registerHostCommands } from './commands/host.js';
import { registerImageCommands } from './commands/image.js';
import { registerSandboxCommands } from './commands/sandbox.js';
import { registerSkillCommands } from './commands/skill.js';
import { registerSlackCommands } from './commands/slack.js';
import { registerVmCommands } from './commands/vm.js';
import { deferUnusedEngineDeps } from './lazy-engine-deps.js';
import { runService } from './run-service.js';

// Before anything loads dockerode (see lazy-engine-deps.ts).
deferUnusedEngineDeps();

// Every command loads only what it runs: the services' modules (BullMQ, the engine client, fastify …)
// are imported by the commands that start them, not by `sandbot --help` or `sandbot audit show`.
const workerModule = () => import('../worker/start-worker.js');
const gatewayModule = () => import('../gateway/start-gateway.js');
const adaptersModule = () => import('../../adapters/index.js');

const program = new Command('sandbot')
  .description('Autonomous AI agents for Slack, Discord and web chat, each conversation in its own sandbox.')
  .showHelpAfterError();

program
  .command('up')
  .description('run the gateway and a worker in one process (one machine)')
  .action(() =>
    runService(async (config, logger) => {
      // Both loaded at once (their file reads overlap); the worker starts first, as before: a worker
      // that refuses its layer stops `up` before the gateway takes any message.
      const [{ startWorker }, { startGateway, assertGatewayMayStart }, { createChatAdapters }] =
        await Promise.all([workerModule(), gatewayModule(), adaptersModule()]);
      // The gateway's refusals (an open port, open allowlists) come before the worker starts sandboxes.
      assertGatewayMayStart(config);
      const worker = await startWorker(config, logger);
      const gateway = await startGateway(config, logger, createChatAdapters);
      console.log(`sandbot is up: ${gateway.url}`);
      return [gateway, worker];
    }),
  );
program
  .command('gateway')
  .description('run the gateway: chat adapters, web chat, delivery of replies')
  .action(() =>
    runService(async (config, logger) => {
      const [{ startGateway }, { createChatAdapters }] = await Promise.all([
        gatewayModule(),
        adaptersModule(),
      ]);
      return [await startGateway(config, logger, createChatAdapters)];
    }),
  );
program
  .command('worker')
  .description('run a worker: sandboxes, model broker, turns')
  .action(() =>
    runService(async (config, logger) => [await (await workerModule()).startWorker(config, logger)]),
  );

registerAuditCommands(program);
registerDoctorCommand(program);
registerHostCommands(program);
registerImageCommands(program);
registerSandboxCommands(program);
registerSkillCommands(program);
registerSlackCommands(program);
registerDiscordCommands(program);
registerVmCommands(program);

await program.parseAsync(process.argv);
