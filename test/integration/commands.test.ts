import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sandboxDriverFromConfig } from '../../sandbox/host/driver/from-config.js';
import { webConversationId } from '../../src/contracts/conversation/id.js';
import { instanceKeys } from '../../src/contracts/redis/keys.js';
import {
  type ConversationControl,
  createConversationControl,
} from '../../src/shared/queue/conversation-control.js';
import { ConversationStore } from '../../src/shared/queue/conversation-store.js';
import { InboundQueue } from '../../src/shared/queue/inbound-queue.js';
import { REDIS_URL, testInstance } from '../../testkit/redis.js';
import { webMessage } from '../helpers/messages.js';
import { openSse, type SseClient } from '../helpers/sse.js';
import { type ScriptedStack, startScriptedStack, testConfig } from '../helpers/stack.js';
import { turnsSettled } from '../helpers/turns.js';

/** Conversation commands as the chat adapters send them: run, reset, stop, status. */

const config = testConfig(testInstance('cmd'));
let stack: ScriptedStack;
let redis: Redis;
let inbound: InboundQueue;
let control: ConversationControl;

beforeAll(async () => {
  stack = await startScriptedStack(config, () => ({ reply: 'ok' }));
  redis = new Redis(REDIS_URL);
  const store = new ConversationStore(redis, config.SANDBOT_INSTANCE);
  inbound = new InboundQueue(redis, store, config.SANDBOT_INSTANCE);
  control = createConversationControl(redis, store, config);
});

afterAll(async () => {
  await inbound?.close();
  redis?.disconnect();
  await stack?.stop();
});

const submit = (session: string, text: string, command?: 'run' | 'reset') =>
  inbound.submit(
    webMessage(session, text, { user: { id: 'u1', name: 'alice' }, ...(command ? { command } : {}) }),
  );

const replies = (sse: SseClient) =>
  sse.events.filter((e) => e.type === 'reply').map((e) => (e.type === 'reply' ? e.text : ''));

describe('conversation commands', () => {
  it('`run` runs a shell command without the model; `reset` wipes the workspace', async () => {
    const sse = await openSse(`${stack.url}/api/conversations/cmd-run/events`);
    try {
      const before = stack.ollama.chatRequests().length;
      await submit('cmd-run', 'echo kept > /workspace/kept.txt && id -u', 'run');
      await sse.waitFor((e) => e.type === 'reply');
      expect(replies(sse)[0]).toBe('$ echo kept > /workspace/kept.txt && id -u\n```\nexit code 0\n1000\n```');
      expect(stack.ollama.chatRequests().length).toBe(before);
      await submit('cmd-run', '', 'reset');
      await sse.waitFor((e) => e.type === 'reply' && e.text.startsWith('Conversation reset'));
      await submit('cmd-run', 'ls /workspace', 'run');
      await sse.waitFor((e) => e.type === 'reply' && e.text.startsWith('$ ls /workspace'));
      expect(replies(sse).at(-1)).not.toContain('kept.txt');
    } finally {
      sse.close();
    }
  });

  it('`stop` cancels the running turn, and `status` shows whether one runs', async () => {
    stack.ollama.setScript([{ hold: 'never' }]);
    const conversation = webConversationId('cmd-stop');
    const sse = await openSse(`${stack.url}/api/conversations/cmd-stop/events`);
    try {
      expect(await control.stop(conversation, 'alice')).toBe(false);
      await submit('cmd-stop', 'think forever');
      await stack.ollama.waitForHold('never');
      expect(await control.status(conversation)).toMatchObject({ turnRunning: true, pending: 1 });
      expect(await control.stop(conversation, 'alice')).toBe(true);
      const stopped = await sse.waitFor((e) => e.type === 'reply');
      expect(stopped.type === 'reply' && stopped.text).toBe('Stopped (asked by alice).');
      // The stopped message is done with; the conversation takes the next one.
      stack.ollama.setScript(() => ({ reply: 'back' }));
      await submit('cmd-stop', 'hello');
      await sse.waitFor((e) => e.type === 'reply' && e.text === 'back');
      await turnsSettled(redis, config.SANDBOT_INSTANCE, conversation);
      const status = await control.status(conversation);
      expect(status.pending).toBe(0);
      expect(status.lastTurnAt).toMatch(/^\d{4}-/);
    } finally {
      sse.close();
    }
  });

  it('stops an idle sandbox and starts it again, files kept, on the next message', async () => {
    const conversation = webConversationId('cmd-idle');
    const driver = sandboxDriverFromConfig(config);
    const sse = await openSse(`${stack.url}/api/conversations/cmd-idle/events`);
    try {
      await submit('cmd-idle', 'echo persisted > /workspace/p.txt', 'run');
      await sse.waitFor((e) => e.type === 'reply');
      await turnsSettled(redis, config.SANDBOT_INSTANCE, conversation);
      // Not idle yet: nothing happens.
      await stack.worker.worker.stopIdleSandboxes();
      expect((await driver.list()).find((s) => s.conversation === conversation)?.state).toBe('running');
      // Idle for longer than SANDBOX_IDLE_SECONDS.
      await redis.zadd(instanceKeys(config.SANDBOT_INSTANCE).lastUsed, Date.now() - 3_600_000, conversation);
      await stack.worker.worker.stopIdleSandboxes();
      expect((await driver.list()).find((s) => s.conversation === conversation)?.state).toBe('exited');
      await submit('cmd-idle', 'cat /workspace/p.txt', 'run');
      await sse.waitFor((e) => e.type === 'reply' && e.text.includes('persisted'));
    } finally {
      sse.close();
    }
  });
});
