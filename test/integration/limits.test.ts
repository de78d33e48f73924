import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sandboxDriverFromConfig } from '../../sandbox/driver/from-config.js';
import { webConversationId } from '../../src/conversation/id.js';
import { type FakeOllama, startFakeOllama } from '../fakes/fake-ollama.js';
import { testInstance } from '../helpers/redis.js';
import { shellModel, turnEnd } from '../helpers/shell-model.js';
import { cleanInstance, startStack, testConfig } from '../helpers/stack.js';

/** Per-turn token budget, the cap on live sandboxes, and ephemeral workspaces. */

const config = testConfig(testInstance('limits'), {
  SANDBOX_MAX_LIVE: '2',
  SANDBOT_EPHEMERAL: 'web:eph',
  SANDBOT_MAX_TOKENS_PER_TURN: '100',
});
let ollama: FakeOllama;
let stack: Awaited<ReturnType<typeof startStack>>;
const driver = () => sandboxDriverFromConfig(config);

beforeAll(async () => {
  ollama = await startFakeOllama({ models: ['qwen2.5:7b'], script: shellModel });
  Object.assign(config, { OLLAMA_HOST: ollama.url });
  stack = await startStack(config);
});

afterAll(async () => {
  await stack?.stop();
  await ollama?.close();
  await cleanInstance(config);
});

const turn = (session: string, text: string) => turnEnd(stack.url, session, text);

describe('limits', () => {
  it('ends a turn that spends its token budget with a clear message; the conversation goes on', async () => {
    const long = `echo ${'x'.repeat(600)}`;
    const ended = await turn('tokens', long);
    expect(ended.type === 'error' && ended.message).toBe(
      'The agent used its budget of 100 model tokens for one turn.',
    );
    ollama.setScript(() => ({ reply: 'fine' }));
    try {
      const next = await turn('tokens', 'hello');
      expect(next.type === 'reply' && next.text).toBe('fine');
    } finally {
      ollama.setScript(shellModel);
    }
  });

  it('keeps at most SANDBOX_MAX_LIVE sandboxes running, stopping the least recently used', async () => {
    for (const session of ['cap-a', 'cap-b', 'cap-c']) {
      const done = await turn(session, 'true');
      expect(done.type === 'reply' || done.type === 'error').toBe(true);
    }
    const running = (await driver().list()).filter((s) => s.state === 'running').map((s) => s.conversation);
    expect(running.length).toBeLessThanOrEqual(2);
    expect(running).toContain(webConversationId('cap-c'));
  });

  it('wipes an ephemeral conversation’s workspace when it goes idle', async () => {
    const conversation = webConversationId('eph-1');
    await turn('eph-1', 'true');
    expect((await driver().list()).some((s) => s.conversation === conversation)).toBe(true);
    // The worker lets go of the conversation just after the reply; an idle sweep then wipes it.
    await expect
      .poll(async () => {
        await stack.worker.worker.stopIdleSandboxes(Date.now() + 3_600_000);
        return (await driver().list()).some((s) => s.conversation === conversation);
      })
      .toBe(false);
  });
});
