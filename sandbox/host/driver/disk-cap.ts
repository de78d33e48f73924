import type { Config } from '../../../src/contracts/config/schema.js';
import type { Logger } from '../../../src/contracts/log/logger.js';

/**
 * Whether every sandbox's /workspace and /session get their size caps (SANDBOX_WORKSPACE_MB,
 * SANDBOX_SESSION_MB), decided before a worker takes any work. Caps are loop-mounted ext4 images: the
 * worker makes them itself when it is root beside a local engine, and through a helper container
 * inside the micro-VM. Anywhere else the worker refuses to start, unless the operator turned caps off
 * (SANDBOX_WORKSPACE_MB=0), which is then reported as a weakness (start-up log, `sandbot doctor`).
 */

export type DiskCapSettings = Pick<
  Config,
  'SANDBOX_WORKSPACE_MB' | 'SANDBOX_SESSION_MB' | 'SANDBOX_LAYER' | 'DOCKER_HOST'
>;

export type DiskCapVerdict =
  | { ok: true; capped: true; detail: string }
  | { ok: true; capped: false; detail: string; fix: string }
  | { ok: false; reason: string; fix: string };

export const UNCAPPED_FIX =
  'set SANDBOX_WORKSPACE_MB (e.g. 2048) and run the worker as root on the engine host, or use SANDBOX_LAYER=microvm';

const REFUSAL_FIX =
  'run the worker as root on the engine’s host, or use SANDBOX_LAYER=microvm (caps are made inside the ' +
  'micro-VM); or set SANDBOX_WORKSPACE_MB=0 to run without caps (reported as a weakness)';

/** An engine reached through a local socket (unix, named pipe), i.e. on the worker's own host. */
export function localEngine(dockerHost: string | undefined): boolean {
  return dockerHost === undefined || dockerHost === '' || /^(unix|npipe):\/\/|^\//.test(dockerHost);
}

/** Pure: the verdict for these settings, a worker running as `uid` (undefined: not a POSIX process). */
export function judgeDiskCaps(config: DiskCapSettings, uid: number | undefined): DiskCapVerdict {
  const workspace = config.SANDBOX_WORKSPACE_MB;
  if (workspace === 0) {
    return {
      ok: true,
      capped: false,
      detail:
        'WEAKNESS: /workspace and /session are uncapped (SANDBOX_WORKSPACE_MB=0): one agent can fill the engine host’s disk',
      fix: UNCAPPED_FIX,
    };
  }
  const caps = `each /workspace capped at ${workspace} MiB, each /session at ${config.SANDBOX_SESSION_MB} MiB`;
  if (config.SANDBOX_LAYER === 'microvm')
    return { ok: true, capped: true, detail: `${caps} (in the micro-VM)` };
  if (!localEngine(config.DOCKER_HOST)) {
    return {
      ok: false,
      reason: `size caps are loop mounts the worker makes on the engine’s host, and DOCKER_HOST=${config.DOCKER_HOST} is another machine`,
      fix: REFUSAL_FIX,
    };
  }
  if (uid !== 0) {
    return {
      ok: false,
      reason: `size caps are loop-mounted ext4 images, which need root on the engine host (this worker runs as uid ${uid ?? 'unknown'})`,
      fix: REFUSAL_FIX,
    };
  }
  return { ok: true, capped: true, detail: `${caps} (loop-mounted images under SANDBOX_DISK_DIR)` };
}

/** The worker's start-up step: throws (the worker refuses to start) or logs the caps, or the weakness. */
export function requireDiskCaps(config: DiskCapSettings, logger: Logger): DiskCapVerdict {
  const verdict = judgeDiskCaps(config, process.getuid?.());
  if (!verdict.ok)
    throw new Error(`the sandboxes’ disk caps cannot be made here: ${verdict.reason} (fix: ${verdict.fix})`);
  if (verdict.capped) logger.info({ disk: verdict.detail }, 'disk caps');
  else logger.warn({ disk: verdict.detail, fix: verdict.fix }, 'sandbox disks uncapped (a weakness)');
  return verdict;
}
