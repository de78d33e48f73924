import { type ChildProcess, spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SANDBOX_IMAGE } from '../../testkit/instance.js';
import { REDIS_URL } from '../../testkit/redis.js';
import { TEST_LAYER } from './stack.js';

/** A `sandbot up` / `gateway` process of the built CLI, as an operator starts it. */
export interface CliService {
  child: ChildProcess;
  stderr: () => string;
  exit: Promise<number | null>;
}

/** The settings every such test service shares: this test's instance, Redis, image, layer and folders. */
export function serviceSettings(instance: string, ollamaUrl: string): Record<string, string> {
  return {
    SANDBOT_INSTANCE: instance,
    SANDBOT_REDIS_URL: REDIS_URL,
    SANDBOX_IMAGE,
    SANDBOX_LAYER: TEST_LAYER,
    SANDBOX_MEMORY_MB: '256',
    SANDBOT_WEB_CHAT: 'on',
    SANDBOT_LOG_LEVEL: 'warn',
    SANDBOT_AUDIT_DIR: join(tmpdir(), 'sandbot-test-audit'),
    // Where cleanInstance looks for this instance's capped volumes (testConfig's folder).
    SANDBOX_DISK_DIR: join(tmpdir(), 'sandbot-test-volumes'),
    OLLAMA_HOST: ollamaUrl,
  };
}

/** Spawns `command` with the caller's environment plus `settings`, keeping its stderr. */
export function spawnService(command: 'up' | 'gateway', settings: Record<string, string>): CliService {
  const child = spawn(process.execPath, ['dist/src/cli/main.js', command], {
    env: { ...process.env, ...settings },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, stderr: () => stderr, exit };
}
