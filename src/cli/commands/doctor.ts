import type { Command } from 'commander';
import { createDocker } from '../../../sandbox/driver/docker-client.js';
import { runDoctor } from '../../doctor/checks.js';
import { formatDoctorReport } from '../../doctor/report.js';
import { loadConfigOrExit } from '../run-service.js';

export function registerDoctorCommand(program: Command): void {
  program
    .command('doctor')
    .description(
      'check Redis, the Docker engine, the sandbox image and layer, Ollama, the model and chat tokens, and say how to fix each',
    )
    .action(async () => {
      const config = loadConfigOrExit();
      const checks = [
        ...(await runDoctor({ config, docker: createDocker(config.DOCKER_HOST) })),
        // Bolt loads only when there is a Slack token to check.
        ...(config.SLACK_BOT_TOKEN
          ? await (await import('../../../adapters/slack/token-check.js')).checkSlackTokens(config)
          : []),
      ];
      console.log(formatDoctorReport(checks));
      process.exitCode = checks.every((c) => c.ok) ? 0 : 1;
    });
}
