import { type ChildProcess, spawn } from 'node:child_process';
import type { Redis } from 'ioredis';
import { SANDBOX_IMAGE } from '../testkit/instance.js';
import { REDIS_URL } from '../testkit/redis.js';

export { freePort } from '../testkit/ports.js';

import { sleep, until } from './stats.js';

/** `sandbot up` as a user runs it: a child process, measured from the outside. */
export interface UpProcess {
  pid: number;
  url: string;
  /** From spawn to the first 200 of GET /healthz. */
  readyMs: number;
  /** From spawn to the worker's BullMQ connection blocking on the inbound queue. */
  consumingMs: number;
  stop(): Promise<void>;
}

const MAIN = new URL('../src/cli/main.js', import.meta.url).pathname;
// BullMQ names its blocking connection `<prefix>:<base64 of the queue name>`.
const INBOUND_B64 = Buffer.from('inbound').toString('base64');

/**
 * Spawn → exit of `sandbot --help`: node and the CLI itself (commander, config, logger). Each command
 * loads its own modules only when it runs (`up`: the worker's and the gateway's), so this is no longer
 * the floor under start-up.
 */
export async function measureModuleLoad(n = 3): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const began = performance.now();
    const child = spawn(process.execPath, [MAIN, '--help'], { stdio: 'ignore' });
    await new Promise((resolve) => child.once('exit', resolve));
    samples.push(performance.now() - began);
  }
  return samples;
}

/** The environment of a bench `up`: only sandbot settings the bench chose, none of the caller's. */
export function upEnvironment(settings: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!/^(SANDBOT_|SANDBOX_|SLACK_|DISCORD_|OLLAMA_)/.test(name)) env[name] = value;
  }
  return { ...env, ...settings };
}

export async function startUp(settings: Record<string, string>, redis: Redis): Promise<UpProcess> {
  const port = Number(settings.SANDBOT_HTTP_PORT);
  const instance = settings.SANDBOT_INSTANCE as string;
  const url = `http://127.0.0.1:${port}`;
  const began = performance.now();
  const child = spawn(process.execPath, [MAIN, 'up'], {
    env: upEnvironment(settings),
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString('utf8')).slice(-4000);
  });
  const exited = () => child.exitCode !== null || child.signalCode !== null;
  const failIfExited = () => {
    if (exited()) throw new Error(`bench: sandbot up exited (${child.exitCode}): ${stderr}`);
  };
  const ready = until(
    'sandbot up answering /healthz',
    async () => {
      failIfExited();
      const ok = await fetch(`${url}/healthz`).then(
        (r) => r.ok,
        () => false,
      );
      return ok ? performance.now() - began : undefined;
    },
    30_000,
  );
  const consuming = until(
    'the worker consuming the inbound queue',
    async () => {
      failIfExited();
      const clients = await redis.client('LIST');
      const blocked = String(clients)
        .split('\n')
        .some((line) => line.includes(`name=${instance}:bull:${INBOUND_B64} `) && /cmd=bzpopmin/.test(line));
      return blocked ? performance.now() - began : undefined;
    },
    30_000,
  );
  const [readyMs, consumingMs] = await Promise.all([ready, consuming]).catch(async (error: unknown) => {
    await stopChild(child);
    throw error;
  });
  return { pid: child.pid as number, url, readyMs, consumingMs, stop: () => stopChild(child) };
}

/** SIGTERM (graceful stop), then SIGKILL if it lingers. */
async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timedOut = await Promise.race([gone.then(() => false), sleep(15_000).then(() => true)]);
  if (timedOut) {
    child.kill('SIGKILL');
    await gone;
  }
}

/** What every bench stack is configured with: its own instance, the local Redis, a fake Ollama, audit files in `auditDir`. */
export function benchSettings(options: {
  instance: string;
  ollamaUrl: string;
  auditDir: string;
}): Record<string, string> {
  return {
    SANDBOT_INSTANCE: options.instance,
    SANDBOT_REDIS_URL: REDIS_URL,
    SANDBOX_IMAGE,
    // The headline figures are runc's (bench/layers.ts compares the layers); named, so auto does not pick.
    SANDBOX_LAYER: 'container',
    SANDBOT_EGRESS_PORT: '0',
    SANDBOT_AUDIT_DIR: options.auditDir,
    SANDBOT_LOG_LEVEL: 'warn',
    OLLAMA_HOST: options.ollamaUrl,
    SANDBOT_WEB_CHAT: 'on',
    // Load from test users, not people: the per-person limits would refuse most of it.
    SANDBOT_USER_MESSAGES_PER_MINUTE: '0',
    SANDBOT_USER_CONVERSATIONS_PER_HOUR: '0',
  };
}
