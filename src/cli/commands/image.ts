import type { Command } from 'commander';
import { loadConfigOrExit } from '../run-service.js';

export function registerImageCommands(program: Command): void {
  const image = program.command('image').description('the sandbox image');
  image
    .command('build')
    .description('build the sandbox image (needs `npm run build` first)')
    .option('--tag <tag>', 'image tag (default: SANDBOX_IMAGE)')
    .option(
      '--base <image>',
      'base image (default: sandbot-base:bookworm when built locally, else node:20-bookworm-slim)',
    )
    .option('--quiet', 'print only the result')
    .action(async (options: { tag?: string; base?: string; quiet?: boolean }) => {
      const config = loadConfigOrExit();
      // The engine client and the image build load only for this command.
      const [{ createDocker }, { buildSandboxImage, resolveBaseImage }] = await Promise.all([
        import('../../../sandbox/host/driver/docker-client.js'),
        import('../../../sandbox/host/image/image.js'),
      ]);
      const docker = createDocker(config.DOCKER_HOST);
      const tag = options.tag ?? config.SANDBOX_IMAGE;
      const baseImage = await resolveBaseImage(docker, options.base);
      const started = Date.now();
      try {
        await buildSandboxImage(docker, {
          tag,
          baseImage,
          onProgress: options.quiet
            ? undefined
            : (line) => process.stdout.write(line.endsWith('\n') ? line : `${line}\n`),
        });
      } catch (error) {
        console.error(`sandbot: ${error instanceof Error ? error.message : String(error)}`);
        process.exit(1);
      }
      console.log(`built ${tag} from ${baseImage} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    });
}
