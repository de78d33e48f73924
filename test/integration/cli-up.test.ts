import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { webConversationId } from '../../src/contracts/conversation/id.js';
import { conversationKeys } from '../../src/contracts/redis/keys.js';
import { type FakeOllama, startFakeOllama } from '../../testkit/fakes/fake-ollama.js';
import { cleanInstance } from '../../testkit/instance.js';
import { freePort } from '../../testkit/ports.js';
import { REDIS_URL, testInstance } from '../../testkit/redis.js';
import { type CliService, serviceSettings, spawnService } from '../helpers/cli-service.js';
import { testConfig } from '../helpers/stack.js';

/**
 * `sandbot up` as an operator runs it: the built CLI in its own process, which loads the worker's and
 * the gateway's modules only for this command (src/cli/main.ts), on the real engine and Redis.
 */

const instance = testInstance('cli-up');
const config = testConfig(instance);
const redis = new Redis(REDIS_URL);
let ollama: FakeOllama;

beforeAll(async () => {
  ollama = await startFakeOllama({ script: () => ({ reply: 'hello from the model' }) });
});

afterAll(async () => {
  await ollama.close();
  await cleanInstance(config);
  redis.disconnect();
});

function up(settings: Record<string, string>): CliService {
  return spawnService('up', { ...serviceSettings(instance, ollama.url), ...settings });
}

async function eventually<T>(what: string, check: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('sandbot up', () => {
  it('answers, runs a turn in a sandbox with its worker, and stops cleanly on SIGTERM', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const service = up({ SANDBOT_HTTP_PORT: String(port) });
    try {
      await eventually('GET /healthz answering 200', () =>
        fetch(`${url}/healthz`).then(
          (r) => (r.ok ? true : undefined),
          () => undefined,
        ),
      );
      const response = await fetch(`${url}/api/messages`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ conversation: 'up-one', user: 'alice', text: 'are you there?' }),
      });
      expect(response.status).toBe(202);
      const done = conversationKeys(instance, webConversationId('up-one')).done;
      await eventually('the turn finishing', async () =>
        (await redis.get(done)) === '1' ? true : undefined,
      );
      const asked = ollama.chatRequests().map((r) => r.messages.at(-1)?.content ?? '');
      expect(asked.some((text) => text.includes('are you there?'))).toBe(true);
    } finally {
      service.child.kill('SIGTERM');
    }
    expect(await service.exit).toBe(0);
  });

  it('refuses to start, naming the reason, when its worker cannot run the layer; the gateway never answers', async () => {
    const port = await freePort();
    const service = up({
      SANDBOT_HTTP_PORT: String(port),
      SANDBOX_LAYER: 'gvisor',
      SANDBOX_RUNTIME: 'runsc-not-registered',
    });
    // Asked all along: the worker's check comes before the gateway listens.
    let exited = false;
    let answered = false;
    const code = service.exit.finally(() => {
      exited = true;
    });
    while (!exited) {
      answered ||= await fetch(`http://127.0.0.1:${port}/healthz`).then(
        (r) => r.ok,
        () => false,
      );
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(await code).toBe(1);
    expect(service.stderr()).toMatch(
      /sandbot: the sandbox layer "gvisor" cannot run here: the engine has no runtime "runsc-not-registered"/,
    );
    expect(answered).toBe(false);
  });
});
