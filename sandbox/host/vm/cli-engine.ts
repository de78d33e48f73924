import type Dockerode from 'dockerode';
import type { Config } from '../../../src/contracts/config/schema.js';
import { guestDocker } from './guest-engine.js';
import { vmPaths } from './paths.js';
import { runningGuest } from './qemu-process.js';
import { readClientTlsSync } from './tls.js';

/**
 * For commands that act on sandboxes (`sandbot sandbox ls|stop|rm`): under SANDBOX_LAYER=microvm the
 * sandboxes are in the guest's engine, so that is the one to ask; undefined for the other layers.
 */
export function sandboxEngineForCli(
  config: Pick<Config, 'SANDBOX_LAYER' | 'SANDBOT_VM_DIR'>,
): Dockerode | undefined {
  if (config.SANDBOX_LAYER !== 'microvm') return undefined;
  const paths = vmPaths(config.SANDBOT_VM_DIR);
  const state = runningGuest(paths);
  if (!state) {
    throw new Error(
      'SANDBOX_LAYER=microvm and the micro-VM is not running: its sandboxes are inside it (start it with `sandbot vm up`)',
    );
  }
  return guestDocker(readClientTlsSync(paths.tls), state.port);
}
