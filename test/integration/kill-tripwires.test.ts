import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDocker } from '../../sandbox/host/driver/docker-client.js';
import { sandboxNames } from '../../sandbox/host/driver/docker-spec.js';
import { sandboxDriverFromConfig } from '../../sandbox/host/driver/from-config.js';
import { type ConversationId, webConversationId } from '../../src/contracts/conversation/id.js';
import {
  type ConversationControl,
  createConversationControl,
} from '../../src/shared/queue/conversation-control.js';
import { ConversationStore } from '../../src/shared/queue/conversation-store.js';
import type { FakeChatRequest, FakeStep } from '../../testkit/fakes/fake-ollama.js';
import { REDIS_URL, testInstance } from '../../testkit/redis.js';
import { shellModel } from '../helpers/shell-model.js';
import { openSse, postMessage, type SseClient } from '../helpers/sse.js';
import { type ScriptedStack, startScriptedStack, testConfig } from '../helpers/stack.js';

/** The kill switch and the tripwires: each kills the sandbox, tells the channel why and quarantines. */

/** The shell model, except that a message saying "hold-me" keeps its turn running until the end. */
function shell(request: FakeChatRequest): FakeStep {
  const last = request.messages.at(-1);
  if (last?.role === 'user' && last.content.includes('hold-me')) return { hold: 'forever' };
  return shellModel(request);
}

const config = testConfig(testInstance('kill'));
let stack: ScriptedStack;
let redis: Redis;
let control: ConversationControl;

beforeAll(async () => {
  stack = await startScriptedStack(config, shell);
  redis = new Redis(REDIS_URL);
  control = createConversationControl(redis, new ConversationStore(redis, config.SANDBOT_INSTANCE), config);
});

afterAll(async () => {
  stack?.ollama.release('forever');
  redis?.disconnect();
  await stack?.stop();
});

/** Runs a shell command as root in the conversation's sandbox (not as the agent), to its end. */
async function execAsRoot(conversation: ConversationId, command: string): Promise<void> {
  const docker = createDocker(undefined);
  const container = docker.getContainer(sandboxNames(config.SANDBOT_INSTANCE, conversation).container);
  const exec = await container.exec({ Cmd: ['sh', '-c', command], User: '0:0', AttachStdout: true });
  const stream = await exec.start({ hijack: true, stdin: false });
  stream.resume();
  await once(stream, 'end');
}

const stateOf = async (session: string) =>
  (await sandboxDriverFromConfig(config).list()).find((s) => s.conversation === webConversationId(session))
    ?.state;

async function expectQuarantined(sse: SseClient, session: string) {
  await postMessage(stack.url, session, `echo ${randomUUID()}`);
  const notice = await sse.waitFor(
    (e) => e.type === 'error' && e.message.startsWith('This conversation is quarantined'),
  );
  expect(notice.type === 'error' && notice.message).toContain('An admin must release it');
}

describe('kill switch and tripwires', () => {
  it('an admin kill ends the running turn at once, tells the channel, and quarantines until released', async () => {
    const sse = await openSse(`${stack.url}/api/conversations/killme/events`);
    try {
      await postMessage(stack.url, 'killme', 'hold-me');
      await stack.ollama.waitForHold('forever');
      expect(await stateOf('killme')).toBe('running');
      await control.kill(webConversationId('killme'), 'admin:alice', 'looked suspicious');
      const killed = await sse.waitFor((e) => e.type === 'error');
      expect(killed.type === 'error' && killed.message).toBe(
        'Killed (looked suspicious; by admin:alice). This conversation is quarantined until an admin releases it.',
      );
      await expect.poll(() => stateOf('killme'), { timeout: 10_000 }).toBe('exited');
      await expectQuarantined(sse, 'killme');
      expect(await control.release(webConversationId('killme'), 'admin:alice')).toBe(true);
      await postMessage(stack.url, 'killme', 'echo back-in-service');
      await sse.waitFor((e) => e.type === 'reply' && e.text.includes('back-in-service'));
    } finally {
      sse.close();
    }
  });

  it('reading the planted canary credentials kills the sandbox', async () => {
    const sse = await openSse(`${stack.url}/api/conversations/canary/events`);
    try {
      await postMessage(stack.url, 'canary', 'cat ~/.aws/credentials');
      const killed = await sse.waitFor((e) => e.type === 'error');
      expect(killed.type === 'error' && killed.message).toMatch(
        /the agent (read|went for) the canary credentials file; by tripwire/,
      );
      // The model never saw the canary: the request carrying it was not brokered.
      const token = (await redis.keys(`${config.SANDBOT_INSTANCE}:conv:*:canary`)).length;
      expect(token).toBeGreaterThan(0);
      expect(JSON.stringify(stack.ollama.chatRequests())).not.toMatch(/aws_access_key_id = AKIA/);
      await expectQuarantined(sse, 'canary');
    } finally {
      sse.close();
    }
  });

  it('flooding the protocol with garbage kills the sandbox', async () => {
    const sse = await openSse(`${stack.url}/api/conversations/flood/events`);
    try {
      // The agent cannot write to the runtime's stdout any more (its real uid is root's): its flood is
      // refused and the turn ends as usual (test/redteam/protocol.test.ts has the attack).
      await postMessage(
        stack.url,
        'flood',
        'for i in $(seq 100); do for fd in /proc/[0-9]*/fd/1; do echo "garbage $i" > "$fd"; done; done 2>/dev/null; echo flood-over',
      );
      const over = await sse.waitFor((e) => e.type === 'reply');
      expect(over.type === 'reply' && over.text).toContain('flood-over');
      // The tripwire still guards the worker against a runtime that was taken over: garbage written
      // past the agent (as root in the container, onto the init's stdout) during a turn kills it.
      await postMessage(stack.url, 'flood', 'sleep 30');
      await sse.waitFor((e) => e.type === 'progress');
      await execAsRoot(
        webConversationId('flood'),
        'for i in $(seq 100); do echo "garbage $i" > /proc/1/fd/1; done',
      );
      const killed = await sse.waitFor((e) => e.type === 'error' && e.message.startsWith('Killed'));
      expect(killed.type === 'error' && killed.message).toContain('protocol abuse');
      await expectQuarantined(sse, 'flood');
    } finally {
      sse.close();
    }
  });
});
