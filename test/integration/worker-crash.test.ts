import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createChatAdapters } from '../../adapters/index.js';
import { webConversationId } from '../../src/contracts/conversation/id.js';
import { createLogger } from '../../src/contracts/log/logger.js';
import { startGateway } from '../../src/gateway/start-gateway.js';
import { AuditJournal } from '../../src/shared/audit/journal.js';
import { parseEvents } from '../../src/shared/audit/summary.js';
import { type FakeOllama, startFakeOllama } from '../../testkit/fakes/fake-ollama.js';
import { cleanInstance } from '../../testkit/instance.js';
import { testInstance } from '../../testkit/redis.js';
import { openSse, postMessage } from '../helpers/sse.js';
import { testConfig } from '../helpers/stack.js';
import { WorkerProcesses } from '../helpers/worker-process.js';

/** A worker SIGKILLed mid-turn: another worker process completes the turn, and the user gets one reply. */

const MODEL = 'qwen2.5:7b';
const config = testConfig(testInstance('crash'));
let ollama: FakeOllama;
let gateway: Awaited<ReturnType<typeof startGateway>>;
const workers = new WorkerProcesses(config);
const journal = new AuditJournal(config.SANDBOT_AUDIT_DIR, config.SANDBOT_INSTANCE);

beforeAll(async () => {
  ollama = await startFakeOllama({ models: [MODEL] });
  Object.assign(config, { OLLAMA_HOST: ollama.url, SANDBOT_MODEL: MODEL });
  gateway = await startGateway(config, createLogger(config), createChatAdapters);
});

afterAll(async () => {
  workers.killAll();
  await gateway?.stop();
  await ollama?.close();
  await cleanInstance(config);
});

describe('a worker killed mid-turn', () => {
  it('loses nothing: another worker completes the turn and the user receives exactly one reply', async () => {
    let calls = 0;
    ollama.setScript(() => {
      calls += 1;
      // The first model call is held until its worker is dead; the rerun answers at once.
      return calls === 1 ? { hold: 'first', reply: 'never sent' } : { reply: 'finished after takeover' };
    });
    const sse = await openSse(`${gateway.url}/api/conversations/crash/events`);
    try {
      const first = workers.spawn();
      await postMessage(gateway.url, 'crash', 'do the thing');
      await ollama.waitForHold('first');
      first.kill('SIGKILL');
      await new Promise((resolve) => first.once('exit', resolve));
      workers.spawn();
      const reply = await sse.waitFor((e) => e.type === 'reply', 90_000);
      expect(reply.type === 'reply' && reply.text).toBe('finished after takeover');
      ollama.release('first');
      // Give a duplicate every chance to show up: one more turn on the same conversation must come after.
      await postMessage(gateway.url, 'crash', 'and again');
      await sse.waitFor(
        (e) => e.type === 'reply' && e.text === 'finished after takeover' && e.id !== reply.id,
      );
      const replies = sse.events.filter((e) => e.type === 'reply');
      expect(replies).toHaveLength(2);
      expect(replies[0]?.id).toBe(reply.id);
      expect(replies[1]?.id).not.toBe(reply.id);
      expect(sse.events.filter((e) => e.type === 'error')).toEqual([]);
    } finally {
      sse.close();
    }
  });

  it('tells the model, and the audit, which tool call had started when its worker died', async () => {
    const command = 'echo started > /workspace/mark; sleep 30';
    let killed = false;
    ollama.setScript((request) => {
      const last = request.messages.at(-1);
      if (!killed) return { toolCalls: [{ name: 'bash', arguments: { command } }] };
      // The rerun: the model reads the note before the user's words.
      if (last?.role === 'user') return { reply: `rerun saw: ${last.content.split('\n\n')[0]}` };
      return { reply: 'unexpected' };
    });
    // Only the worker about to be killed may take this turn: the earlier test's survivor goes first.
    workers.killAll();
    await new Promise((r) => setTimeout(r, 500));
    const sse = await openSse(`${gateway.url}/api/conversations/crash-tool/events`);
    try {
      const first = workers.spawn();
      await postMessage(gateway.url, 'crash-tool', 'start the long job');
      // The tool is running in the sandbox once its progress shows.
      await sse.waitFor((e) => e.type === 'progress' && e.text.includes('echo started'), 90_000);
      killed = true;
      first.kill('SIGKILL');
      await new Promise((resolve) => first.once('exit', resolve));
      workers.spawn();
      const reply = await sse.waitFor((e) => e.type === 'reply', 90_000);
      const text = reply.type === 'reply' ? reply.text : '';
      expect(text).toContain('this turn was interrupted');
      expect(text).toContain(`1. bash ${JSON.stringify({ command })}`);
      // A writer killed while holding the audit lock delays the file by up to the lock's 30 s.
      const read = async () => parseEvents((await journal.read(webConversationId('crash-tool'))) ?? '');
      let events = await read();
      for (let i = 0; i < 80 && !events.some((e) => e.kind === 'tool.call'); i++) {
        await new Promise((r) => setTimeout(r, 500));
        events = await read();
      }
      expect(events.filter((e) => e.kind === 'tool.started').map((e) => e.data.args)).toEqual([{ command }]);
      expect(events.filter((e) => e.kind === 'tool.call')).toEqual([
        expect.objectContaining({
          turnId: reply.turnId,
          data: expect.objectContaining({
            name: 'bash',
            args: { command },
            reported: false,
            interrupted: true,
          }),
        }),
      ]);
    } finally {
      sse.close();
    }
  }, 180_000);
});
