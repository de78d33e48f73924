import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { sandboxDriverFromConfig } from '../../sandbox/host/driver/from-config.js';
import { webConversationId } from '../../src/contracts/conversation/id.js';
import { cleanInstance, SANDBOX_IMAGE } from '../../testkit/instance.js';
import { testInstance } from '../../testkit/redis.js';
import { testConfig } from '../helpers/stack.js';

/** The `sandbot` command as an operator runs it (the built CLI, a real engine and Redis). */

const run = promisify(execFile);
const config = testConfig(testInstance('cli'));
const env = {
  ...process.env,
  SANDBOT_INSTANCE: config.SANDBOT_INSTANCE,
  SANDBOX_IMAGE,
  // The CLI must find the sandboxes' capped volumes where the test's driver made them (it left them mounted).
  SANDBOX_DISK_DIR: config.SANDBOX_DISK_DIR,
  OLLAMA_HOST: 'http://127.0.0.1:9',
};
const sandbot = (...args: string[]) =>
  run(process.execPath, ['dist/src/cli/main.js', ...args], { env }).then(
    (r) => ({ code: 0, ...r }),
    (e: { code: number; stdout: string; stderr: string }) => e,
  );

afterAll(() => cleanInstance(config));

describe('sandbot CLI', () => {
  it('refuses a bad setting with one line naming it, exit code 2', async () => {
    const result = await run(process.execPath, ['dist/src/cli/main.js', 'worker'], {
      env: { ...process.env, SANDBOT_WORKER_CONCURRENCY: 'lots' },
    }).catch((e: { code: number; stderr: string }) => e);
    expect(result).toMatchObject({ code: 2 });
    expect(result.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(/^config: SANDBOT_WORKER_CONCURRENCY is "lots": /),
    ]);
  });

  it('lists, stops and removes sandboxes', async () => {
    const conversation = webConversationId('cli-one');
    const driver = sandboxDriverFromConfig(config);
    const session = await driver.open(conversation);
    await session.close();
    const listed = await sandbot('sandbox', 'ls');
    expect(listed.stdout).toMatch(/web:cli-one\trunning\t/);
    expect((await sandbot('sandbox', 'stop', 'web:cli-one')).stdout).toContain('stopped web:cli-one');
    expect((await sandbot('sandbox', 'ls')).stdout).toMatch(/web:cli-one\texited\t/);
    expect((await sandbot('sandbox', 'rm', 'web:cli-one', '--wipe')).stdout).toContain(
      'removed web:cli-one and its volumes',
    );
    expect((await sandbot('sandbox', 'ls')).stdout.trim()).toBe('no sandboxes');
    const bad = await sandbot('sandbox', 'rm', '../etc');
    expect(bad).toMatchObject({ code: 2, stderr: expect.stringContaining('is not a conversation id') });
  });

  it('doctor names what is missing and how to fix it, exit code 1', async () => {
    const result = await sandbot('doctor');
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/✓ Redis/);
    expect(result.stdout).toMatch(/✓ Docker engine/);
    expect(result.stdout).toMatch(/✗ Ollama.*\n\s+fix: /);
  });
});
