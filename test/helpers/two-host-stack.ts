import { type ChildProcess, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Redis } from 'ioredis';
import { createChatAdapters } from '../../adapters/index.js';
import { createDocker } from '../../sandbox/host/driver/docker-client.js';
import type { Config } from '../../src/contracts/config/schema.js';
import { createLogger } from '../../src/contracts/log/logger.js';
import { type RunningGateway, startGateway } from '../../src/gateway/start-gateway.js';
import { hostIdOf } from '../../src/shared/hosts/host-report.js';
import { type FakeOllama, startFakeOllama } from '../../testkit/fakes/fake-ollama.js';
import { serviceSettings } from './cli-service.js';
import { hostReporting, spawnSourceWorker } from './host-workers.js';
import { type SecondEngine, startSecondEngine } from './second-engine.js';
import { shellModel } from './shell-model.js';

/**
 * Issue #20's set-up on one machine: host a is the system's engine, host b a second dockerd (its own
 * socket and data root); a `sandbot worker` process beside each, one gateway, one Redis, and a
 * scripted model that runs each message as a shell command.
 */

const run = promisify(execFile);

export type HostLabel = 'a' | 'b';

export interface TwoHostStack {
  engine: SecondEngine;
  ollama: FakeOllama;
  gateway: RunningGateway;
  /** Each host's id (its engine's). */
  ids: Record<HostLabel, string>;
  /** The live worker process of each host. */
  workers: Map<HostLabel, ChildProcess>;
  /** Starts the worker of `label` on its engine (again, after a test killed it). */
  spawnWorker(label: HostLabel): void;
  /** The CLI as its own process (from the source): its output and exit code. */
  cli(args: string[], options?: { env?: Record<string, string>; timeoutMs?: number }): Promise<CliRun>;
  /** Kills the workers, stops the gateway and the model; the engine is the caller's to remove. */
  stop(): Promise<void>;
}

export interface CliRun {
  out: string;
  code: number;
}

/**
 * Starts the stack for `config` (its OLLAMA_HOST set to the fake model's), each worker with the shared
 * service settings, a 3 s turn lease and `workerEnv(label)` over them; resolves once both hosts report.
 * Where no second dockerd can start, says why instead.
 */
export async function startTwoHostStack(
  config: Config,
  redis: Redis,
  workerEnv: (label: HostLabel) => Record<string, string>,
): Promise<{ stack: TwoHostStack } | { skipReason: string }> {
  let engine: SecondEngine;
  try {
    engine = await startSecondEngine();
  } catch (error) {
    return { skipReason: `no second dockerd could start here: ${(error as Error).message}` };
  }
  const ollama = await startFakeOllama({ models: [config.SANDBOT_MODEL], script: shellModel });
  Object.assign(config, { OLLAMA_HOST: ollama.url });
  const gateway = await startGateway(config, createLogger(config), createChatAdapters);
  const ids = {
    a: hostIdOf(await createDocker(process.env.DOCKER_HOST).info()),
    b: hostIdOf(await engine.docker.info()),
  };
  const dockerHosts = { a: process.env.DOCKER_HOST, b: engine.host };
  const workers = new Map<HostLabel, ChildProcess>();
  const settings = serviceSettings(config.SANDBOT_INSTANCE, ollama.url);

  const spawnWorker = (label: HostLabel) => {
    const env: Record<string, string | undefined> = {
      ...process.env,
      ...settings,
      SANDBOT_MODEL: config.SANDBOT_MODEL,
      SANDBOT_TURN_LEASE_SECONDS: '3',
      ...workerEnv(label),
      DOCKER_HOST: dockerHosts[label],
    };
    if (!env.DOCKER_HOST) delete env.DOCKER_HOST;
    const child = spawnSourceWorker(env, `worker ${label}`, (gone) => {
      if (workers.get(label) === gone) workers.delete(label);
    });
    workers.set(label, child);
  };

  const cli: TwoHostStack['cli'] = async (args, options = {}) => {
    const env = { ...process.env, ...settings, SANDBOT_LOG_LEVEL: 'error', ...options.env };
    try {
      const { stdout } = await run(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
        env,
        timeout: options.timeoutMs ?? 120_000,
      });
      return { out: stdout, code: 0 };
    } catch (error) {
      const failed = error as { stdout?: string; stderr?: string; code?: number };
      return { out: `${failed.stdout ?? ''}${failed.stderr ?? ''}`, code: failed.code ?? -1 };
    }
  };

  const stop = async () => {
    for (const child of workers.values()) child.kill('SIGKILL');
    await gateway.stop();
    await ollama.close();
  };
  try {
    spawnWorker('a');
    spawnWorker('b');
    await Promise.all([ids.a, ids.b].map((host) => hostReporting(redis, config.SANDBOT_INSTANCE, host)));
  } catch (error) {
    await stop();
    await engine.remove();
    throw error;
  }
  return { stack: { engine, ollama, gateway, ids, workers, spawnWorker, cli, stop } };
}
