import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDocker } from '../../sandbox/host/driver/docker-client.js';
import { sandboxNames } from '../../sandbox/host/driver/docker-spec.js';
import { webConversationId } from '../../src/contracts/conversation/id.js';
import type { OutboundEvent } from '../../src/contracts/protocol/outbound.js';
import { instanceKeys } from '../../src/contracts/redis/keys.js';
import { ConversationStore } from '../../src/shared/queue/conversation-store.js';
import { InboundQueue } from '../../src/shared/queue/inbound-queue.js';
import { cleanInstance } from '../../testkit/instance.js';
import { REDIS_URL, testInstance } from '../../testkit/redis.js';
import { rehomedEvents } from '../helpers/host-workers.js';
import { webMessage } from '../helpers/messages.js';
import { removeInstanceVolumes } from '../helpers/skill-stack.js';
import { openSse, postMessage, type SseClient } from '../helpers/sse.js';
import { testConfig } from '../helpers/stack.js';
import { startTwoHostStack, type TwoHostStack } from '../helpers/two-host-stack.js';

/**
 * Issue #20 on one machine: two hosts (the system's engine and a second dockerd with its own socket and
 * data root, --bridge=none --iptables=false), a worker process on each, one gateway, one Redis, a
 * scripted model that runs each message as a shell command. Every conversation keeps its files across
 * turns whichever worker is free, both hosts get conversations; a host whose worker is killed and
 * engine stopped leaves its conversations held with one notice each within the grace while the other
 * host's answer; a `reset` then starts one afresh on the live host; the host back, its files are back
 * and the held messages answered; `sandbot host drain` moves its idle conversations and their files.
 */

const GRACE_S = 5;
const SESSIONS = Array.from({ length: 12 }, (_, i) => `home-${i + 1}`);
const config = testConfig(testInstance('hosts'), {
  SANDBOX_WORKSPACE_MB: '0',
  SANDBOT_HOST_GRACE_SECONDS: String(GRACE_S),
  // One test user sends every message.
  SANDBOT_USER_MESSAGES_PER_MINUTE: '0',
  SANDBOT_USER_CONVERSATIONS_PER_HOUR: '0',
});
const system = createDocker(process.env.DOCKER_HOST);
const redis = new Redis(REDIS_URL);
// Two workers on one machine: each its own folder for volume images.
const disks = {
  a: mkdtempSync(join(tmpdir(), 'sandbot-hosts-a-')),
  b: mkdtempSync(join(tmpdir(), 'sandbot-hosts-b-')),
};
const hostSettings = { SANDBOX_WORKSPACE_MB: '0', SANDBOT_HOST_GRACE_SECONDS: String(GRACE_S) };
let stack: TwoHostStack | undefined;
let skipReason: string | undefined;
const ids = { a: '', b: '' };

const homes = async () => redis.hgetall(instanceKeys(config.SANDBOT_INSTANCE).homes);
const homeOf = async (session: string) => (await homes())[webConversationId(session)];

/** The shell command of turn `n`: shows the notes so far, then adds this turn's line. */
const turnCommand = (n: number) => `cat /workspace/notes 2>/dev/null; echo turn-${n} >> /workspace/notes`;
const ended = (e: OutboundEvent) => e.type === 'reply' || e.type === 'error';

async function turn(session: string, n: number): Promise<OutboundEvent> {
  const sse = await openSse(`${stack?.gateway.url}/api/conversations/${session}/events`);
  try {
    await postMessage(stack?.gateway.url ?? '', session, turnCommand(n));
    return await sse.waitFor(ended, 90_000);
  } finally {
    sse.close();
  }
}

const replyText = (e: OutboundEvent) => (e.type === 'reply' ? e.text : `(error: ${JSON.stringify(e)})`);
const seen = (text: string) => [...text.matchAll(/turn-(\d+)/g)].map((m) => Number(m[1]));
const upTo = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

/** The CLI's output; it must succeed. */
async function cli(...args: string[]): Promise<string> {
  const result = await stack?.cli(args, { env: hostSettings });
  if (result?.code !== 0) throw new Error(`sandbot ${args.join(' ')} failed: ${result?.out}`);
  return result.out;
}

beforeAll(async () => {
  const started = await startTwoHostStack(config, redis, (label) => ({
    ...hostSettings,
    SANDBOX_DISK_DIR: disks[label],
  }));
  if ('skipReason' in started) {
    skipReason = started.skipReason;
    return;
  }
  stack = started.stack;
  Object.assign(ids, stack.ids);
}, 300_000);

afterAll(async () => {
  await stack?.stop();
  await stack?.engine.remove();
  await cleanInstance(config);
  // Volumes a drain copied here whose sandbox never started.
  await removeInstanceVolumes(system, config.SANDBOT_INSTANCE);
  for (const dir of Object.values(disks)) rmSync(dir, { recursive: true, force: true });
  redis.disconnect();
}, 120_000);

describe('two hosts, one Redis', () => {
  it('keeps every conversation on its home with its files, using both hosts', async (context) => {
    if (skipReason || !stack) return context.skip(skipReason);
    const { engine } = stack;
    expect(ids.a).not.toBe(ids.b);
    await Promise.all(
      SESSIONS.map(async (session) => {
        for (const n of upTo(4)) {
          const end = await turn(session, n);
          expect(seen(replyText(end)), `${session} turn ${n}`).toEqual(upTo(n - 1));
        }
      }),
    );
    const homed = SESSIONS.map((s) => homes().then((h) => h[webConversationId(s)]));
    const hosts = await Promise.all(homed);
    expect(new Set(hosts)).toEqual(new Set([ids.a, ids.b]));
    // Each sandbox is on its home's engine, and only there.
    for (const [i, session] of SESSIONS.entries()) {
      const name = sandboxNames(config.SANDBOT_INSTANCE, webConversationId(session)).container;
      const [here, there] = hosts[i] === ids.a ? [system, engine.docker] : [engine.docker, system];
      await expect(here?.getContainer(name).inspect()).resolves.toBeTruthy();
      await expect(there?.getContainer(name).inspect()).rejects.toThrow();
    }
  }, 240_000);

  it('holds a gone host’s conversations with one notice each; a reset starts one afresh; the host back, the files are', async (context) => {
    if (skipReason || !stack) return context.skip(skipReason);
    const { engine, gateway } = stack;
    const onA: string[] = [];
    const onB: string[] = [];
    for (const session of SESSIONS) ((await homeOf(session)) === ids.a ? onA : onB).push(session);
    stack.workers.get('b')?.kill('SIGKILL');
    await engine.stop();
    const stopped = Date.now();
    const streams = new Map<string, SseClient>();
    for (const session of onB)
      streams.set(session, await openSse(`${gateway.url}/api/conversations/${session}/events`));
    await Promise.all(onB.map((session) => postMessage(gateway.url, session, turnCommand(5))));
    // The other host's conversations answer meanwhile, with their files.
    await Promise.all(
      onA.map(async (session) => expect(seen(replyText(await turn(session, 5)))).toEqual(upTo(4))),
    );
    const notices = await Promise.all(
      onB.map((session) => streams.get(session)?.waitFor((e) => e.type === 'error', 40_000)),
    );
    const latest = Date.now() - stopped;
    for (const notice of notices) {
      expect(notice?.type === 'error' && notice.message).toMatch(
        new RegExp(`workspace is on host .*${ids.b}\\), which is not answering; say \`reset\``),
      );
    }
    expect(latest).toBeLessThan((GRACE_S + 25) * 1000);
    // A second message in the same outage: held, no second notice.
    const [first, ...rest] = onB;
    if (!first) throw new Error('no conversation was homed on the second host');
    await postMessage(gateway.url, first, turnCommand(6));
    await new Promise((resolve) => setTimeout(resolve, 5000));
    expect(streams.get(first)?.events.filter((e) => e.type === 'error')).toHaveLength(1);
    expect(streams.get(first)?.events.filter((e) => e.type === 'reply')).toHaveLength(0);
    // The user's word: a reset moves one conversation to the live host, afresh.
    const resetOne = rest.pop();
    if (resetOne) {
      const inbound = new InboundQueue(
        redis,
        new ConversationStore(redis, config.SANDBOT_INSTANCE),
        config.SANDBOT_INSTANCE,
      );
      await inbound.submit(webMessage(resetOne, '', { command: 'reset' }));
      await inbound.close();
      const sse = streams.get(resetOne);
      await sse?.waitFor((e) => e.type === 'reply' && e.text.startsWith('Conversation reset'), 60_000);
      expect(await homeOf(resetOne)).toBe(ids.a);
      expect(await rehomedEvents(redis, config.SANDBOT_INSTANCE, resetOne)).toEqual([
        expect.objectContaining({
          actor: 'user:web:u1',
          data: expect.objectContaining({ from: ids.b, to: ids.a, reason: 'reset' }),
        }),
      ]);
    }
    // The host comes back: its conversations carry on with their files, the held messages answered in order.
    await engine.start();
    stack.spawnWorker('b');
    await Promise.all(
      [first, ...rest].map(async (session) => {
        const sse = streams.get(session);
        const reply = await sse?.waitFor((e) => e.type === 'reply', 120_000);
        expect(seen(reply ? replyText(reply) : ''), session).toEqual(upTo(4));
      }),
    );
    // The two messages held in one outage were answered as one turn (seq 5 and 6).
    const firstReplies = streams.get(first)?.events.filter((e) => e.type === 'reply') ?? [];
    expect(firstReplies.map((e) => e.turnId)).toEqual([`${webConversationId(first)}#5-6`]);
    for (const sse of streams.values()) sse.close();
    // The reset conversation stays where it restarted, with none of its old files.
    if (resetOne) expect(seen(replyText(await turn(resetOne, 7)))).toEqual([]);
  }, 300_000);
  it('drains a host: its idle conversations move with their files, new ones go elsewhere', async (context) => {
    if (skipReason || !stack) return context.skip(skipReason);
    const { engine, gateway } = stack;
    const onB: string[] = [];
    for (const session of SESSIONS) if ((await homeOf(session)) === ids.b) onB.push(session);
    expect(onB.length).toBeGreaterThan(0);
    const out = await cli('host', 'drain', ids.b, '--to', ids.a);
    expect(out).toContain(`${onB.length} of ${onB.length} conversations moved to ${ids.a}`);
    for (const session of onB) {
      expect(await homeOf(session)).toBe(ids.a);
      const names = sandboxNames(config.SANDBOT_INSTANCE, webConversationId(session));
      await expect(engine.docker.getVolume(names.workspaceVolume).inspect()).rejects.toThrow();
    }
    // Served by the other host now, with every file it had.
    const [moved] = onB;
    const end = await turn(moved ?? '', 9);
    expect(seen(replyText(end))).toEqual(expect.arrayContaining(upTo(4)));
    // New conversations avoid the drained host, which `host ls` and /readyz show.
    await turn('home-new', 1);
    expect(await homeOf('home-new')).toBe(ids.a);
    expect(await cli('host', 'ls')).toMatch(
      new RegExp(`${ids.b}\\t[^\\n]*live \\(draining\\)\\t[^\\n]*\\t0\\n`),
    );
    // An admin's word: a conversation started afresh on a named host, on record.
    expect(await cli('host', 'rehome', 'web:home-new', '--to', ids.b)).toContain('now lives on');
    expect(await homeOf('home-new')).toBe(ids.b);
    expect(await rehomedEvents(redis, config.SANDBOT_INSTANCE, 'home-new')).toEqual([
      expect.objectContaining({
        actor: expect.stringMatching(/^admin:/),
        data: expect.objectContaining({ reason: 'admin' }),
      }),
    ]);
    await redis.hset(instanceKeys(config.SANDBOT_INSTANCE).homes, webConversationId('home-new'), ids.a);
    const ready = (await (await fetch(`${gateway.url}/readyz`)).json()) as {
      hosts: { host: string; health: string; draining: boolean; conversations: number }[];
    };
    expect(ready.hosts).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ host: ids.b, health: 'live', draining: true, conversations: 0 }),
        expect.objectContaining({
          host: ids.a,
          health: 'live',
          draining: false,
          conversations: SESSIONS.length + 1,
        }),
      ]),
    );
  }, 180_000);
});
