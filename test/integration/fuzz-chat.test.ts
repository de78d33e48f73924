import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createChatAdapters } from '../../adapters/index.js';
import { Runtime } from '../../sandbox/runtime/runtime.js';
import { createLogger } from '../../src/contracts/log/logger.js';
import { type RuntimeToWorker, WorkerToRuntime } from '../../src/contracts/protocol/agent.js';
import { LineDecoder } from '../../src/contracts/protocol/lines.js';
import { startGateway } from '../../src/gateway/start-gateway.js';
import { waitFor } from '../../testkit/fakes/fake-slack.js';
import { eventBody, personMessage } from '../../testkit/fakes/fake-slack-events.js';
import { cleanInstance } from '../../testkit/instance.js';
import { testInstance } from '../../testkit/redis.js';
import { type DiscordHarness, startDiscordHarness } from '../helpers/discord-harness.js';
import { type SlackHarness, startSlackHarness } from '../helpers/slack-harness.js';
import { testConfig } from '../helpers/stack.js';

/**
 * Random and malformed input at the real boundaries: the gateway's HTTP API, Slack events through the
 * real Bolt app, Discord gateway dispatches through the real discord.js client, and protocol lines into
 * the runtime. Each must answer in words (or ignore), never crash, and still work afterwards.
 */

const anyJson = fc.jsonValue({ maxDepth: 4 });
const SAMPLES = 60;

describe('fuzz: the web API', () => {
  const config = testConfig(testInstance('fuzz-web'));
  let gateway: Awaited<ReturnType<typeof startGateway>>;
  beforeAll(async () => {
    gateway = await startGateway(
      config,
      createLogger({ ...config, SANDBOT_LOG_LEVEL: 'silent' }),
      createChatAdapters,
    );
  });
  afterAll(async () => {
    await gateway?.stop();
    await cleanInstance(config);
  });

  it('answers random bodies and content types with a 4xx naming the problem, then still takes a good one', async () => {
    const bodies = fc.sample(
      fc.oneof(
        anyJson.map((v) => ({ type: 'application/json', body: JSON.stringify(v) })),
        fc.string().map((s) => ({ type: 'application/json', body: s })),
        fc
          .uint8Array({ maxLength: 300 })
          .map((b) => ({ type: 'application/octet-stream', body: Buffer.from(b) })),
        fc.string().map((s) => ({ type: 'text/plain', body: s })),
      ),
      SAMPLES,
    );
    for (const { type, body } of bodies) {
      const response = await fetch(`${gateway.url}/api/messages`, {
        method: 'POST',
        headers: { 'content-type': type },
        body,
      });
      const text = await response.text();
      expect(response.status, `${type} ${String(body).slice(0, 80)} → ${text}`).toBeLessThan(500);
      if (response.status !== 202) {
        expect(response.status).toBeGreaterThanOrEqual(400);
        expect((JSON.parse(text) as { error?: string }).error, text).toMatch(/\w{3}/);
      }
    }
    const good = await fetch(`${gateway.url}/api/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ conversation: 'after-fuzz', user: 'alice', text: 'still here?' }),
    });
    expect(good.status).toBe(202);
  });
});

describe('fuzz: Slack events through Bolt', () => {
  let h: SlackHarness;
  beforeAll(async () => {
    h = await startSlackHarness('fuzz-slack', 'http');
  });
  afterAll(async () => {
    await h?.stop();
  });

  it('acknowledges or refuses random events without queueing them, then queues a real mention', async () => {
    const events = fc.sample(
      fc.oneof(
        anyJson.map((v) => (typeof v === 'object' && v !== null && !Array.isArray(v) ? v : { value: v })),
        fc
          .record({ type: fc.constantFrom('message', 'app_mention', 'reaction_added'), text: fc.string() })
          .map((e) => eventBody(h.fake, { ...e, channel: 'C0GENERAL', ts: '1700000000.000100' })),
        fc.dictionary(fc.string(), anyJson).map((e) => eventBody(h.fake, e)),
      ),
      // Bolt holds a request it has no listener for until its own timeout (≈3 s): fewer samples here.
      20,
    );
    for (const body of events) {
      const status = await h.sender.event(body as Record<string, unknown>);
      expect(status).toBeLessThan(500);
    }
    expect(await h.queued()).toEqual([]);
    const m = personMessage(h.fake, {
      channel: 'C0GENERAL',
      user: 'U0ALICE',
      text: `<@${h.fake.botUserId}> hi`,
    });
    await h.sender.event(m.mention);
    await waitFor('the real mention queued', async () => (await h.queued()).length === 1);
  });
});

describe('fuzz: Discord dispatches through discord.js', () => {
  let h: DiscordHarness;
  beforeAll(async () => {
    h = await startDiscordHarness();
  });
  afterAll(async () => {
    await h?.stop();
  });

  it('survives malformed MESSAGE_CREATE and INTERACTION_CREATE payloads, then queues a real message', async () => {
    const { fake } = h;
    const payloads = fc.sample(
      fc.oneof(
        fc.dictionary(fc.string(), anyJson),
        fc.record({
          id: fc.string(),
          channel_id: fc.constantFrom(fake.channels.general.id, 'nope', ''),
          content: fc.string(),
          author: fc.oneof(anyJson, fc.record({ id: fc.string(), username: fc.string() })),
        }),
      ),
      SAMPLES,
    );
    for (const [i, payload] of payloads.entries())
      fake.gateway.dispatch(i % 2 ? 'MESSAGE_CREATE' : 'INTERACTION_CREATE', payload);
    const dm = fake.dmChannel(fake.users.bob);
    const real = fake.userMessage({ channelId: dm.id, content: 'after the noise', author: fake.users.bob });
    await h.waitForQueued((m) => m.id === real.id, 'the real message');
    expect((await h.queued()).map((m) => m.text)).toEqual(['after the noise']);
    expect(fake.gateway.connected()).toBe(true);
  });
});

describe('fuzz: protocol lines into the runtime', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sandbot-fuzz-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('answers every malformed line with an error, runs nothing, and still answers hello', async () => {
    const out: RuntimeToWorker[] = [];
    // No shell: a random line must never run a command anyway, and here it could not.
    const runtime = new Runtime({
      workspace: dir,
      session: dir,
      maxLineBytes: 4096,
      write: (message) => out.push(message),
      shell: { file: '/bin/false', args: [] },
    });
    const decoder = new LineDecoder(WorkerToRuntime, 4096);
    const lines = fc.sample(
      fc.oneof(
        fc.string().map((s) => s.replaceAll('\n', ' ')),
        anyJson.map((v) => JSON.stringify(v)),
        fc
          .record({ type: fc.constantFrom('turn', 'run', 'cancel', 'model_response'), turnId: fc.string() })
          .map((v) => JSON.stringify(v)),
      ),
      200,
    );
    let refused = 0;
    for (const line of lines) {
      for (const result of decoder.push(`${line}\n`)) {
        if (!result.ok) refused += 1;
        expect(() => runtime.receive(result)).not.toThrow();
      }
    }
    const errors = out.filter((m) => m.type === 'error');
    expect(refused).toBeGreaterThan(0);
    expect(errors.length).toBeGreaterThanOrEqual(refused);
    expect(out.some((m) => m.type === 'tool_started')).toBe(false);
    runtime.receive({ ok: true, value: { type: 'hello' } });
    expect(out.at(-1)).toMatchObject({ type: 'ready' });
    await runtime.shutdown();
  });
});
