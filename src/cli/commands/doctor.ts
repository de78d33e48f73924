import type { Command } from 'commander';
import { createDocker } from '../../../sandbox/driver/docker-client.js';
import { doctorReport } from '../../doctor/report.js';
import { loadConfigOrExit } from '../run-service.js';

export function registerDoctorCommand(program: Command): void {
  program
    .command('doctor')
    .description(
      'check Redis, the Docker engine, the sandbox image, Ollama and the model, and say how to fix each',
    )
    .action(async () => {
      const config = loadConfigOrExit();
      const report = await doctorReport({ config, docker: createDocker(config.DOCKER_HOST) });
      console.log(report.text);
      process.exitCode = report.ok ? 0 : 1;
    });
}
