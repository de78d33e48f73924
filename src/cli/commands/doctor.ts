import type { Command } from 'commander';
import { loadConfigOrExit } from '../run-service.js';

export function registerDoctorCommand(program: Command): void {
  program
    .command('doctor')
    .description(
      'check Redis, the Docker engine, the sandbox image and layer, Ollama, the model and chat tokens, and say how to fix each',
    )
    .option(
      '--security',
      'instead: list each setting weaker than its default or than this host allows, with its fix (exit 1 on any "high")',
    )
    .action(async (options: { security?: boolean }) => {
      const config = loadConfigOrExit();
      if (options.security) {
        const [{ createDocker }, { securityReport }] = await Promise.all([
          import('../../../sandbox/host/driver/docker-client.js'),
          import('../doctor/security.js'),
        ]);
        const report = await securityReport(config, createDocker(config.DOCKER_HOST));
        console.log(report.text);
        process.exitCode = report.ok ? 0 : 1;
        return;
      }
      // The checks (and the engine client) load only for this command.
      const [{ createDocker }, { doctorReport }] = await Promise.all([
        import('../../../sandbox/host/driver/docker-client.js'),
        import('../doctor/report.js'),
      ]);
      const report = await doctorReport({
        config,
        docker: createDocker(config.DOCKER_HOST),
        // Bolt loads only when there is a Slack token to check.
        chatChecks: config.SLACK_BOT_TOKEN
          ? async () => (await import('../../../adapters/slack/token-check.js')).checkSlackTokens(config)
          : undefined,
      });
      console.log(report.text);
      process.exitCode = report.ok ? 0 : 1;
    });
}
