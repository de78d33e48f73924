import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Dockerode from 'dockerode';
import { z } from 'zod';
import type { VmPaths } from './paths.js';

const run = promisify(execFile);

const Manifest = z.object({ engineVersion: z.string(), kernelPackage: z.string() });

export type SeedPlan = { seed: true } | { seed: false; reason: string };

/**
 * The data disk is seeded on the host, at native speed, by a throwaway dockerd of the same version as the
 * guest's (same on-disk format): loading a 300 MB image inside the guest under emulation takes ~10 min.
 * Pure: the caller gathers the facts.
 */
export function planSeed(facts: {
  root: boolean;
  hostEngineVersion?: string;
  guestEngineVersion?: string;
  imageOnHost: boolean;
}): SeedPlan {
  if (!facts.imageOnHost) return { seed: false, reason: 'the sandbox image is not on the host engine' };
  if (!facts.root) return { seed: false, reason: 'seeding needs root (a throwaway dockerd)' };
  if (!facts.hostEngineVersion) return { seed: false, reason: 'no dockerd on this host' };
  if (facts.hostEngineVersion !== facts.guestEngineVersion) {
    return {
      seed: false,
      reason: `the host's dockerd ${facts.hostEngineVersion} differs from the guest's ${facts.guestEngineVersion ?? '?'}`,
    };
  }
  return { seed: true };
}

/** "Docker version 20.10.24+dfsg1, build 5d6db84" → "20.10.24+dfsg1". */
export function parseDockerdVersion(output: string): string | undefined {
  return /version\s+([^\s,]+)/i.exec(output)?.[1];
}

async function hostDockerdVersion(): Promise<string | undefined> {
  try {
    return parseDockerdVersion((await run('dockerd', ['--version'])).stdout);
  } catch {
    return undefined;
  }
}

export interface DataDiskOptions {
  sizeMb: number;
  /** The host engine, holding the sandbox image to seed the disk with. */
  host: Dockerode;
  image: string;
  onLine?: (line: string) => void;
}

/**
 * Creates the guest's data disk (images, containers, volumes) once: a sparse ext4 file, seeded with the
 * sandbox image when the host can. An existing disk is never touched: it holds the sandboxes' volumes.
 */
export async function ensureDataDisk(
  paths: VmPaths,
  options: DataDiskOptions,
): Promise<'kept' | 'seeded' | 'empty'> {
  if (existsSync(paths.dataDisk)) return 'kept';
  const manifest = Manifest.safeParse(JSON.parse(await readFile(paths.manifest, 'utf8').catch(() => '{}')));
  const imageOnHost = await options.host
    .getImage(options.image)
    .inspect()
    .then(() => true)
    .catch(() => false);
  const plan = planSeed({
    root: process.getuid?.() === 0,
    hostEngineVersion: await hostDockerdVersion(),
    guestEngineVersion: manifest.success ? manifest.data.engineVersion : undefined,
    imageOnHost,
  });
  const content = join(paths.scratch, 'data');
  await rm(paths.scratch, { recursive: true, force: true });
  await mkdir(content, { recursive: true, mode: 0o700 });
  try {
    if (plan.seed) {
      await seedImage(paths.scratch, content, options.host, options.image);
      options.onLine?.(`seeded the data disk with ${options.image} on the host`);
    } else {
      options.onLine?.(
        `data disk not seeded (${plan.reason}): the image is loaded into the guest later, slowly`,
      );
    }
    const tmp = `${paths.dataDisk}.tmp`;
    await run('mkfs.ext4', ['-q', '-F', '-L', 'sandbot-data', '-d', content, tmp, `${options.sizeMb}M`]);
    // The sandboxes' files end up on it: readable by root alone, like their volumes on the host.
    await chmod(tmp, 0o600);
    await run('mv', [tmp, paths.dataDisk]);
    return plan.seed ? 'seeded' : 'empty';
  } finally {
    await rm(paths.scratch, { recursive: true, force: true });
  }
}

/** A throwaway dockerd with its own everything (no network, no iptables, an empty config) loads the image. */
async function seedImage(scratch: string, dataRoot: string, host: Dockerode, image: string): Promise<void> {
  const config = join(scratch, 'daemon.json');
  const socket = join(scratch, 'docker.sock');
  await writeFile(config, '{}\n');
  const daemon = spawn(
    'dockerd',
    [
      '--config-file',
      config,
      '--data-root',
      dataRoot,
      '--exec-root',
      join(scratch, 'exec'),
      '--pidfile',
      join(scratch, 'dockerd.pid'),
      '--host',
      `unix://${socket}`,
      '--bridge',
      'none',
      '--iptables=false',
      '--ip6tables=false',
      '--ip-masq=false',
      '--ip-forward=false',
      '--userland-proxy=false',
      '--storage-driver',
      'overlay2',
    ],
    { stdio: 'ignore' },
  );
  const exited = new Promise<void>((resolve) => daemon.once('exit', () => resolve()));
  try {
    const seeder = new Dockerode({ socketPath: socket });
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (daemon.exitCode !== null) throw new Error('the seeding dockerd exited at start');
      if (
        await seeder.ping().then(
          () => true,
          () => false,
        )
      )
        break;
      if (Date.now() > deadline) throw new Error('the seeding dockerd did not answer within 60 s');
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const saved = await host.getImage(image).get();
    const loading = await seeder.loadImage(saved, { quiet: true });
    await new Promise<void>((resolve, reject) => {
      seeder.modem.followProgress(loading, (error: Error | null) => (error ? reject(error) : resolve()));
    });
    await seeder.getImage(image).inspect();
  } finally {
    daemon.kill('SIGTERM');
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 20_000))]);
    if (daemon.exitCode === null) daemon.kill('SIGKILL');
  }
}
