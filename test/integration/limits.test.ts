import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sandboxDriverFromConfig } from '../../sandbox/host/driver/from-config.js';
import { webConversationId } from '../../src/contracts/conversation/id.js';
import { testInstance } from '../../testkit/redis.js';
import { shellModel, turnEnd } from '../helpers/shell-model.js';
import { openSse, postMessage } from '../helpers/sse.js';
import { type ScriptedStack, startScriptedStack, testConfig } from '../helpers/stack.js';

/** Per-turn token budget, the cap on live sandboxes, and ephemeral workspaces. */

const config = testConfig(testInstance('limits'), {
  SANDBOX_MAX_LIVE: '2',
  SANDBOT_EPHEMERAL: 'web:eph-*',
  SANDBOT_MAX_TOKENS_PER_TURN: '100',
});
let stack: ScriptedStack;
const driver = () => sandboxDriverFromConfig(config);

beforeAll(async () => {
  stack = await startScriptedStack(config, shellModel);
});

afterAll(async () => {
  await stack?.stop();
});

const turn = (session: string, text: string) => turnEnd(stack.url, session, text);

describe('limits', () => {
  it('ends a turn that spends its token budget with a clear message; the conversation goes on', async () => {
    const long = `echo ${'x'.repeat(600)}`;
    const ended = await turn('tokens', long);
    expect(ended.type === 'error' && ended.message).toBe(
      'The agent used its budget of 100 model tokens for one turn.',
    );
    stack.ollama.setScript(() => ({ reply: 'fine' }));
    try {
      const next = await turn('tokens', 'hello');
      expect(next.type === 'reply' && next.text).toBe('fine');
    } finally {
      stack.ollama.setScript(shellModel);
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

  it('makes a new conversation wait, with a message, while every sandbox is busy', async () => {
    // Both live sandboxes (cap 2) are in the middle of a turn.
    stack.ollama.setScript((request) =>
      request.messages.at(-1)?.content === 'hold' ? { hold: 'busy', reply: 'held' } : { reply: 'served' },
    );
    try {
      const a = openSse(`${stack.url}/api/conversations/busy-a/events`);
      const b = openSse(`${stack.url}/api/conversations/busy-b/events`);
      const [sa, sb] = await Promise.all([a, b]);
      await postMessage(stack.url, 'busy-a', 'hold');
      await postMessage(stack.url, 'busy-b', 'hold');
      await expect
        .poll(() => stack.ollama.chatRequests().filter((r) => r.messages.at(-1)?.content === 'hold').length, {
          timeout: 30_000,
        })
        .toBe(2);
      const c = await openSse(`${stack.url}/api/conversations/busy-c/events`);
      try {
        await postMessage(stack.url, 'busy-c', 'hello');
        const waiting = await c.waitFor((e) => e.type === 'progress' && e.text.includes('busy'));
        expect(waiting.type === 'progress' && waiting.text).toBe(
          'All 2 sandboxes are busy; your message waits for one to free up.',
        );
        expect(c.events.some((e) => e.type === 'reply')).toBe(false);
        stack.ollama.release('busy');
        const served = await c.waitFor((e) => e.type === 'reply', 60_000);
        expect(served.type === 'reply' && served.text).toBe('served');
      } finally {
        c.close();
        sa.close();
        sb.close();
      }
    } finally {
      stack.ollama.setScript(shellModel);
    }
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
