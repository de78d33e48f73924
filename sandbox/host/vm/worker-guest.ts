import type Dockerode from 'dockerode';
import type { Config } from '../../../src/contracts/config/schema.js';
import type { Logger } from '../../../src/contracts/log/logger.js';
import type { LayerPlan } from '../layers/layer.js';
import type { LayerVerdict } from '../layers/layer-check.js';
import { MicroVm } from './micro-vm.js';

/** What the micro-VM cannot do yet, as a worker refusal (pure). Undefined: the config can run. */
export function microvmRefusal(config: Pick<Config, 'SANDBOX_RUNTIME'>): string | undefined {
  if (config.SANDBOX_RUNTIME && config.SANDBOX_RUNTIME !== 'runc') {
    return `the micro-VM's engine has runc only, not SANDBOX_RUNTIME=${config.SANDBOX_RUNTIME}: unset it`;
  }
  return undefined;
}

/** Seconds between looks at the guest's QEMU; restarts back off up to a minute. */
const WATCH_MS = 5000;
const MAX_BACKOFF_MS = 60_000;

export interface WorkerGuest {
  /** The guest engine's client: stable across restarts (same loopback port). */
  docker: Dockerode;
  vm: MicroVm;
  /** The layer check's verdict for checkLayer's `guest` hook. */
  check(plan: LayerPlan): Promise<LayerVerdict>;
  /** Stops watching; powers the guest off if this worker started it. */
  stop(): Promise<void>;
}

/**
 * For SANDBOX_LAYER=microvm: starts the guest when it is not running (or uses the running one), waits for
 * its engine and the image, and restarts it whenever QEMU dies (sandboxes then start again from their
 * volumes, which live on the guest's data disk).
 */
export async function startWorkerGuest(config: Config, logger: Logger): Promise<WorkerGuest> {
  const refusal = microvmRefusal(config);
  if (refusal) throw new Error(`the sandbox layer "microvm" cannot run here: ${refusal}`);
  const log = logger.child({ component: 'micro-vm' });
  const vm = new MicroVm(config, (line) => log.info(line));
  const up = await vm.up();
  log.info(
    { port: up.state.port, accel: up.state.accel, bootSeconds: up.bootSeconds, image: up.image },
    up.started ? 'micro-VM started' : 'micro-VM already running',
  );
  const port = up.state.port;
  let stopping = false;
  let failures = 0;
  let nextTry = 0;
  let restarting: Promise<void> | undefined;
  const watch = setInterval(() => {
    if (stopping || restarting || vm.running() || Date.now() < nextTry) return;
    log.warn({ port }, 'the micro-VM is gone: starting it again');
    restarting = vm
      .up({ port })
      .then((again) => {
        failures = 0;
        log.info({ bootSeconds: again.bootSeconds }, 'micro-VM restarted');
      })
      .catch((error) => {
        failures += 1;
        nextTry = Date.now() + Math.min(MAX_BACKOFF_MS, WATCH_MS * 2 ** failures);
        log.error({ err: error, failures }, 'the micro-VM could not be restarted');
      })
      .finally(() => {
        restarting = undefined;
      });
  }, WATCH_MS);
  watch.unref();
  return {
    docker: up.docker,
    vm,
    async check(plan) {
      await up.docker.ping();
      return {
        ok: true,
        plan,
        detail: `micro-VM engine on 127.0.0.1:${port} (TLS), ${up.accel.reason}`,
        // The guest's network is closed (QEMU restrict=on): granted sandboxes use the protocol tunnel.
        egress: 'tunnel',
      };
    },
    async stop() {
      stopping = true;
      clearInterval(watch);
      await restarting;
      if (up.started) {
        const outcome = await vm.down();
        log.info({ outcome }, 'micro-VM stopped');
      }
    },
  };
}

/**
 * The micro-VM layer's check without starting anything (for `sandbot doctor`): built, not refused, and,
 * when running, its engine answers and holds the sandbox image. A stopped guest is fine: the worker
 * starts it.
 */
export async function checkGuestAtRest(config: Config, plan: LayerPlan): Promise<LayerVerdict> {
  const refusal = microvmRefusal(config);
  if (refusal) return { ok: false, plan, reason: refusal };
  const vm = new MicroVm(config);
  const accel = vm.accel();
  if (!vm.built()) {
    return {
      ok: false,
      plan,
      reason: `the micro-VM guest is not built in ${vm.paths.root}`,
      fix: 'run `sandbot vm build`',
    };
  }
  const running = vm.running();
  if (!running) {
    return {
      ok: true,
      plan,
      detail: `guest built, not running (the worker starts it): ${accel.reason}`,
      egress: 'tunnel',
    };
  }
  try {
    const docker = await vm.client(running.port);
    const image = await docker
      .getImage(config.SANDBOX_IMAGE)
      .inspect()
      .then(
        () => 'holds the sandbox image',
        () => 'lacks the sandbox image (the worker loads it)',
      );
    await docker.ping();
    return {
      ok: true,
      plan,
      detail: `guest running (pid ${running.pid}, ${running.accel}), engine answers, ${image}`,
      egress: 'tunnel',
    };
  } catch (error) {
    return {
      ok: false,
      plan,
      reason: `the micro-VM runs but its engine does not answer: ${(error as Error).message}`,
      fix: 'see `sandbot vm status`; `sandbot vm down && sandbot vm up` restarts it',
    };
  }
}
