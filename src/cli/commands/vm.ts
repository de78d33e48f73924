import type { Command } from 'commander';
import { loadConfigOrExit } from '../run-service.js';

/** The micro-VM's code loads only when a `sandbot vm` command runs. */
const microVm = () => import('../../../sandbox/host/vm/micro-vm.js');
const layerChoice = async () => ({
  ...(await import('../../../sandbox/host/layers/layer-probe.js')),
  ...(await import('../../../sandbox/host/layers/layer-choice.js')),
});

function fail(error: unknown): never {
  console.error(`sandbot: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
}

export function registerVmCommands(program: Command): void {
  const vm = program
    .command('vm')
    .description('the micro-VM whose engine runs every sandbox under SANDBOX_LAYER=microvm');
  registerBuild(vm);
  registerUp(vm);
  registerDown(vm);
  registerStatus(vm);
}

/** `vm build`: build the guest, unless it is current. */
function registerBuild(vm: Command): void {
  vm.command('build')
    .description(
      'build the guest from Debian packages (kernel, initramfs, root disk, TLS keys); skipped when current',
    )
    .option('--force', 'rebuild even when nothing changed (e.g. for a newer Debian kernel)')
    .option('--quiet', 'print only the result')
    .action(async (options: { force?: boolean; quiet?: boolean }) => {
      const config = loadConfigOrExit();
      const [{ MicroVm }, { buildGuest }] = await Promise.all([
        microVm(),
        import('../../../sandbox/host/vm/build.js'),
      ]);
      const machine = new MicroVm(config);
      try {
        const result = await buildGuest(machine.paths, {
          force: options.force,
          onLine: options.quiet ? undefined : (line) => console.log(line),
        });
        console.log(
          result.built
            ? `built the micro-VM guest in ${result.seconds.toFixed(1)} s (${machine.paths.guest})`
            : `the micro-VM guest is current (${machine.paths.guest}); --force rebuilds it`,
        );
      } catch (error) {
        fail(error);
      }
    });
}

/** `vm up`: start the guest and load the sandbox image. */
function registerUp(vm: Command): void {
  vm.command('up')
    .description('start the guest (unless running), wait for its engine, load the sandbox image once')
    .action(async () => {
      const config = loadConfigOrExit();
      const { MicroVm } = await microVm();
      const machine = new MicroVm(config, (line) => console.log(line));
      try {
        const up = await machine.up();
        const boot =
          up.bootSeconds !== undefined ? `, engine ready after ${up.bootSeconds.toFixed(1)} s` : '';
        console.log(
          `micro-VM ${up.started ? 'started' : 'already running'} (pid ${up.state.pid}, engine on ` +
            `127.0.0.1:${up.state.port} with TLS${boot}; image ${up.image.status})`,
        );
      } catch (error) {
        fail(error);
      }
    });
}

/** `vm down`: stop the guest cleanly. */
function registerDown(vm: Command): void {
  vm.command('down')
    .description('stop the guest cleanly (engine stopped, disk synced); its data disk stays')
    .action(async () => {
      const config = loadConfigOrExit();
      const { MicroVm } = await microVm();
      const machine = new MicroVm(config);
      try {
        console.log(`micro-VM: ${await machine.down()}`);
      } catch (error) {
        fail(error);
      }
    });
}

/** `vm status`: built, running, accelerated? */
function registerStatus(vm: Command): void {
  vm.command('status')
    .description('is the guest built, is it running, how it is accelerated, which sandbox layer is in force')
    .option('--json', 'machine-readable')
    .action(async (options: { json?: boolean }) => {
      const config = loadConfigOrExit();
      const [{ MicroVm }, layerCode] = await Promise.all([microVm(), layerChoice()]);
      const machine = new MicroVm(config);
      const status = machine.status();
      // The layer a worker here runs under (SANDBOX_LAYER=auto: what it would choose, and why).
      const chosen = await layerCode.resolveLayer(config);
      const layer = chosen.ok
        ? { layer: chosen.layer, auto: chosen.auto, reason: chosen.reason }
        : { error: chosen.reason };
      if (options.json) {
        console.log(JSON.stringify({ ...status, dir: machine.paths.root, layer }));
        return;
      }
      console.log(`layer: ${layerCode.describeChoice(chosen)}`);
      console.log(
        `guest: ${status.built ? 'built' : 'not built (run `sandbot vm build`)'} in ${machine.paths.root}`,
      );
      console.log(
        status.running
          ? `running: pid ${status.running.pid}, engine 127.0.0.1:${status.running.port} (TLS), ` +
              `${status.running.accel}, ${status.running.cpus} CPU, ${status.running.memoryMb} MiB, since ${status.running.startedAt}`
          : 'running: no',
      );
      console.log(`acceleration: ${status.accel.reason}`);
      process.exitCode = status.running ? 0 : 3;
    });
}
