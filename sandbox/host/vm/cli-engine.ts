import type Dockerode from 'dockerode';
import type { Config } from '../../../src/contracts/config/schema.js';
import type { WithLayer } from '../layers/layer.js';
import { guestDocker } from './guest-engine.js';
import { vmPaths } from './paths.js';
import { runningGuest } from './qemu-process.js';
import { readClientTlsSync } from './tls.js';

/**
 * For commands that act on sandboxes (`sandbot sandbox ls|stop|rm`): under SANDBOX_LAYER=microvm the
 * sandboxes are in the guest's engine, so that is the one to ask; undefined for the other layers. The
 * layer is resolved (SANDBOX_LAYER=auto: as a worker here chooses it, layer-probe.ts).
 */
export function sandboxEngineForCli(
  config: WithLayer<Pick<Config, 'SANDBOX_LAYER' | 'SANDBOT_VM_DIR'>>,
): Dockerode | undefined {
  if (config.SANDBOX_LAYER !== 'microvm') return undefined;
  const paths = vmPaths(config.SANDBOT_VM_DIR);
  const state = runningGuest(paths);
  if (!state) {
    throw new Error(
      'the sandbox layer is microvm and the micro-VM is not running: its sandboxes are inside it (start it with `sandbot vm up`)',
    );
  }
  return guestDocker(readClientTlsSync(paths.tls), state.port);
}
