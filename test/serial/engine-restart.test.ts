import { execFileSync, spawn } from 'node:child_process';
import { openSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDocker } from '../../sandbox/host/driver/docker-client.js';
import { type FakeOllama, startFakeOllama } from '../../testkit/fakes/fake-ollama.js';
import { cleanInstance } from '../../testkit/instance.js';
import { testInstance } from '../../testkit/redis.js';
import { openSse, postMessage } from '../helpers/sse.js';
import { startStack, testConfig } from '../helpers/stack.js';

/**
 * The Docker engine restarts during a run: the running turn fails with a clear message, and later turns
 * work without restarting sandbot. This restarts the machine's engine, so it runs alone, after the other
 * tests (`npm test` runs test/serial separately).
 */

const docker = createDocker(undefined);
let ollama: FakeOllama;
let stack: Awaited<ReturnType<typeof startStack>>;
const config = testConfig(testInstance('engine'));

async function engineAnswers(): Promise<boolean> {
  return docker.ping().then(
    () => true,
    () => false,
  );
}

async function waitFor(check: () => Promise<boolean>, what: string, seconds = 60): Promise<void> {
  for (let i = 0; i < seconds * 4; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function restartEngine(): Promise<void> {
  // Stop the engine as an operator would, then start it as scripts/setup.sh does.
  execFileSync('pkill', ['-TERM', '-x', 'dockerd']);
  await waitFor(async () => !(await engineAnswers()), 'the engine to stop');
  await waitFor(async () => {
    try {
      execFileSync('pgrep', ['-x', 'dockerd']);
      return false;
    } catch {
      return true;
    }
  }, 'dockerd to exit');
  const log = openSync('/var/log/dockerd.log', 'a');
  spawn('dockerd', [], { detached: true, stdio: ['ignore', log, log] }).unref();
  await waitFor(engineAnswers, 'the engine to answer again', 90);
}

beforeAll(async () => {
  ollama = await startFakeOllama({ models: ['qwen2.5:7b'] });
  Object.assign(config, { OLLAMA_HOST: ollama.url });
  stack = await startStack(config);
});

afterAll(async () => {
  await stack?.stop();
  await ollama?.close();
  await waitFor(engineAnswers, 'the engine', 90);
  await cleanInstance(config);
});

describe('Docker engine restart', () => {
  it('fails the running turn in words, and the next turn works without restarting sandbot', {
    timeout: 240_000,
  }, async () => {
    let calls = 0;
    ollama.setScript(() => {
      calls += 1;
      return calls === 1 ? { hold: 'engine-restart', reply: 'never' } : { reply: 'works again' };
    });
    const sse = await openSse(`${stack.url}/api/conversations/engine/events`);
    try {
      await postMessage(stack.url, 'engine', 'first');
      await ollama.waitForHold('engine-restart');
      await restartEngine();
      const failed = await sse.waitFor((e) => e.type === 'error', 60_000);
      expect(failed.type === 'error' && failed.message).toMatch(/^Your sandbox stopped during the turn/);
      ollama.release('engine-restart');
      await postMessage(stack.url, 'engine', 'second');
      const reply = await sse.waitFor((e) => e.type === 'reply', 90_000);
      expect(reply.type === 'reply' && reply.text).toBe('works again');
    } finally {
      sse.close();
    }
  });
});
