import { type ChildProcess, spawn } from 'node:child_process';
import type { Redis } from 'ioredis';
import { webConversationId } from '../../src/contracts/conversation/id.js';
import { auditKeys, instanceKeys } from '../../src/contracts/redis/keys.js';

/**
 * `sandbot worker` processes from the source (as `node dist/src/cli/main.js worker`, without a build)
 * and what tests with several workers or hosts wait for in Redis.
 */

/** Spawns a worker with `env`; a worker that fails by itself (not killed by the test) says why. */
export function spawnSourceWorker(
  env: Record<string, string | undefined>,
  label: string,
  onExit?: (child: ChildProcess) => void,
): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'worker'], {
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  child.once('exit', (code) => {
    onExit?.(child);
    if (code) console.error(`${label} exited ${code}: ${stderr}`);
  });
  return child;
}

/** Waits until a worker of `host` has reported within the last 2.5 seconds. */
export async function hostReporting(
  redis: Redis,
  instance: string,
  host: string,
  timeoutMs = 90_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const raw = Object.values(await redis.hgetall(instanceKeys(instance).hosts));
    const fresh = raw.map((t) => JSON.parse(t) as { host: string; at: number });
    if (fresh.some((r) => r.host === host && Date.now() - r.at < 2500)) return;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`host ${host} did not report within ${timeoutMs} ms`);
}

/** A web conversation's `host.rehomed` audit events, from the live stream (waits for them to be written). */
export async function rehomedEvents(
  redis: Redis,
  instance: string,
  session: string,
): Promise<{ actor: string; data: Record<string, unknown> }[]> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const entries = await redis.xrange(auditKeys(instance).stream, '-', '+');
    const found = entries.flatMap(([, fields]) => {
      const field = (name: string) => fields[fields.indexOf(name) + 1];
      if (field('conversation') !== webConversationId(session) || field('kind') !== 'host.rehomed') return [];
      return [JSON.parse(field('event') ?? '{}') as { actor: string; data: Record<string, unknown> }];
    });
    if (found.length > 0 || Date.now() > deadline) return found;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}
