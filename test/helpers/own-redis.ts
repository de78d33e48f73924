import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from '../../testkit/ports.js';

/**
 * A redis-server of the test's own on a free port, with append-only persistence (as the README
 * recommends), that the test may stop and start again: the shared Redis is never disturbed.
 */
export interface OwnRedis {
  url: string;
  start(): Promise<void>;
  /** SIGTERM: Redis flushes its append-only file and exits. */
  stop(): Promise<void>;
  /** Stops it and removes its data. */
  remove(): Promise<void>;
}

export async function ownRedis(): Promise<OwnRedis> {
  const dir = await mkdtemp(join(tmpdir(), 'sandbot-redis-'));
  const port = await freePort();
  let server: ChildProcess | undefined;
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--appendonly',
    'yes',
    '--save',
    '',
  ];
  const own: OwnRedis = {
    url: `redis://127.0.0.1:${port}`,
    async start() {
      server = spawn('redis-server', args, { stdio: 'ignore' });
      const probe = new Redis(port, {
        lazyConnect: true,
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
      });
      for (let i = 0; i < 100; i++) {
        const up = await probe.connect().then(
          () => probe.ping().then(() => true),
          () => false,
        );
        if (up) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      probe.disconnect();
    },
    async stop() {
      const running = server;
      if (!running || running.exitCode !== null) return;
      await new Promise((resolve) => {
        running.once('exit', resolve);
        running.kill('SIGTERM');
      });
    },
    async remove() {
      await own.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
  await own.start();
  return own;
}
