import Dockerode from 'dockerode';
import { transferImage } from './image-transfer.js';
import type { ClientTls } from './tls.js';

/**
 * The guest engine's client: TLS with a client certificate on the loopback port QEMU forwards. The
 * engine runs with --tlsverify, so without the worker's key (0600, root's) nobody on the host gets in.
 */
export function guestDocker(tls: ClientTls, port: number): Dockerode {
  return new Dockerode({
    host: '127.0.0.1',
    port,
    protocol: 'https',
    ca: tls.ca,
    cert: tls.cert,
    key: tls.key,
  });
}

export interface WaitOptions {
  timeoutMs: number;
  /** False once QEMU is gone: no point waiting any longer. */
  alive: () => boolean;
  /** The console's last lines, for the error. */
  consoleTail: () => string;
}

/** Polls the guest engine until it answers; rejects early when QEMU dies, or at the deadline. */
export async function waitForEngine(docker: Dockerode, options: WaitOptions): Promise<number> {
  const started = performance.now();
  const deadline = Date.now() + options.timeoutMs;
  let lastError = 'no answer yet';
  for (;;) {
    if (!options.alive()) {
      throw new Error(
        `the micro-VM stopped while booting; its console ended with:\n${options.consoleTail()}`,
      );
    }
    try {
      await withTimeout(docker.ping(), 5000);
      return (performance.now() - started) / 1000;
    } catch (error) {
      lastError = (error as Error).message;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `the micro-VM's engine did not answer within ${options.timeoutMs / 1000} s (${lastError}); ` +
          `raise SANDBOT_VM_BOOT_SECONDS on a slow host. Its console ended with:\n${options.consoleTail()}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

async function imageId(docker: Dockerode, tag: string): Promise<string | undefined> {
  try {
    return (await docker.getImage(tag).inspect()).Id;
  } catch (error) {
    if ((error as { statusCode?: number }).statusCode === 404) return undefined;
    throw error;
  }
}

export type ImageSync = { status: 'present' } | { status: 'loaded'; layers: number; sent: number };

/**
 * Makes the guest hold the host's sandbox image, by image id (a rebuilt image has a new id): loaded
 * through the engine API only when missing or different, sending only the layers the guest lacks
 * (image-transfer.ts); it then stays on the guest's data disk. A whole image under emulation takes
 * minutes, so a new data disk is seeded on the host instead (data-disk.ts).
 */
export async function syncImage(host: Dockerode, guest: Dockerode, tag: string): Promise<ImageSync> {
  const wanted = await imageId(host, tag);
  if (wanted === undefined) {
    throw new Error(
      `the sandbox image "${tag}" is not on the host engine: build it with \`sandbot image build\``,
    );
  }
  if ((await imageId(guest, tag)) === wanted) return { status: 'present' };
  const { layers, sent } = await transferImage(host, guest, tag);
  const loaded = await imageId(guest, tag);
  if (loaded !== wanted) {
    throw new Error(`loading ${tag} into the micro-VM gave image ${loaded ?? 'none'}, not ${wanted}`);
  }
  return { status: 'loaded', layers, sent };
}
