import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FakeOllama, startFakeOllama } from '../../testkit/fakes/fake-ollama.js';
import { cleanInstance } from '../../testkit/instance.js';
import { freePort } from '../../testkit/ports.js';
import { REDIS_URL, testInstance } from '../../testkit/redis.js';
import { testConfig } from '../helpers/stack.js';

/**
 * SANDBOX_LAYER=auto, the default, through the built CLI as an operator runs it: with no layer set,
 * `sandbot up` and `sandbot doctor` choose the strongest layer the host has and say why. Here that is
 * gVisor: runsc is registered (`scripts/setup.sh`) and /dev/kvm is not hardware virtualization.
 */

const instance = testInstance('auto-layer');
let ollama: FakeOllama;

beforeAll(async () => {
  ollama = await startFakeOllama({ script: () => ({ reply: 'hello' }) });
});

afterAll(async () => {
  await ollama.close();
  await cleanInstance(testConfig(instance));
});

/** Only what a deployment must say (where Redis and Ollama are, its name and port): no SANDBOX_LAYER. */
function defaults(port: number): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    SANDBOT_INSTANCE: instance,
    SANDBOT_REDIS_URL: REDIS_URL,
    SANDBOT_HTTP_PORT: String(port),
    OLLAMA_HOST: ollama.url,
    SANDBOT_AUDIT_DIR: join(tmpdir(), 'sandbot-test-audit'),
    ...(process.env.SANDBOX_IMAGE ? { SANDBOX_IMAGE: process.env.SANDBOX_IMAGE } : {}),
  };
}

async function eventually<T>(what: string, check: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const GVISOR_CHOSEN =
  /chosen by SANDBOX_LAYER=auto: runsc \(gVisor\) is registered with the engine; no micro-VM: /;

describe('SANDBOX_LAYER=auto (the default)', () => {
  it('a fresh `sandbot up` with only defaults runs under gVisor, and says why in its log and /readyz', async () => {
    const port = await freePort();
    const child = spawn(process.execPath, ['dist/src/cli/main.js', 'up'], {
      env: defaults(port),
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString('utf8');
    });
    const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      const checked = await eventually('the worker logging its layer', async () =>
        stderr
          .split('\n')
          .filter((line) => line.includes('"sandbox layer checked"'))
          .map((line) => JSON.parse(line) as { layer: string; chosen: string; detail: string })
          .at(0),
      );
      expect(checked.layer).toMatch(/^gvisor: every sandbox under runsc/);
      expect(checked.chosen).toMatch(GVISOR_CHOSEN);
      expect(checked.detail).toMatch(/under gVisor/);
      const layer = await eventually('/readyz reporting the worker’s layer', () =>
        fetch(`http://127.0.0.1:${port}/readyz`).then(
          async (r) => {
            const body = (await r.json()) as { checks: Record<string, { detail?: string }> };
            const detail = body.checks.layer?.detail;
            return detail?.includes('on 1 worker') ? detail : undefined;
          },
          () => undefined,
        ),
      );
      expect(layer).toMatch(
        /^gvisor \(runsc\), egress tunnelled, chosen by SANDBOX_LAYER=auto: runsc \(gVisor\)/,
      );
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exit).toBe(0);
  });

  it('`sandbot doctor` with only defaults checks the same layer and says why', async () => {
    const child = spawn(process.execPath, ['dist/src/cli/main.js', 'doctor'], {
      env: defaults(await freePort()),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      stdout += chunk.toString('utf8');
    });
    await new Promise((resolve) => child.once('exit', resolve));
    const line = stdout.split('\n').find((l) => l.includes('Sandbox layer:'));
    expect(line).toMatch(/^✓ Sandbox layer: gvisor: every sandbox under runsc/);
    expect(line).toMatch(GVISOR_CHOSEN);
  });
});
