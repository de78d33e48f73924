import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { webConversationId } from '../../src/contracts/conversation/id.js';
import { bullPrefix, SCHEDULE_QUEUE } from '../../src/contracts/redis/keys.js';
import { type FakeOllama, startFakeOllama } from '../../testkit/fakes/fake-ollama.js';
import { cleanInstance } from '../../testkit/instance.js';
import { testInstance } from '../../testkit/redis.js';
import { type OwnRedis, ownRedis } from '../helpers/own-redis.js';
import { api, auditOf, createSchedule, listSchedules, sleep } from '../helpers/schedules.js';
import { startStack, testConfig } from '../helpers/stack.js';

/**
 * Schedules across restarts: Redis restarted (append-only persistence) loses none; an occurrence
 * missed while sandbot was down runs once when it is back (not once per missed interval), or is
 * skipped with SANDBOT_SCHEDULE_CATCH_UP=false. Its own redis-server, so the shared one is untouched.
 */

let redis: OwnRedis;
let ollama: FakeOllama;
let stack: Awaited<ReturnType<typeof startStack>> | undefined;
let config: ReturnType<typeof testConfig>;

beforeAll(async () => {
  redis = await ownRedis();
  ollama = await startFakeOllama({ models: ['qwen2.5:7b'], script: () => ({ reply: 'done' }) });
  config = testConfig(testInstance('sched-restart'), {
    SANDBOT_REDIS_URL: redis.url,
    OLLAMA_HOST: ollama.url,
    SANDBOT_SCHEDULE_MIN_SECONDS: '2',
  });
  stack = await startStack(config);
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  await cleanInstance(config).catch(() => undefined);
  await redis?.remove();
  await ollama?.close();
});

const occurrencesOf = async (session: string, kind: 'schedule.run' | 'schedule.skipped') =>
  (await auditOf(config, webConversationId(session), kind)).map((e) => Date.parse(String(e.data.occurrence)));

/** Stops sandbot (gateway and worker), runs `meanwhile`, waits, starts it again; when it was back. */
async function downFor(ms: number, meanwhile: () => Promise<void> = async () => undefined): Promise<number> {
  await stack?.stop();
  stack = undefined;
  await meanwhile();
  await sleep(ms);
  const back = Date.now();
  stack = await startStack(config);
  return back;
}

describe('schedules across restarts', () => {
  it('loses no schedule when Redis restarts', { timeout: 120_000 }, async () => {
    const url = stack?.url ?? '';
    const at = new Date(Date.now() + 15_000).toISOString();
    const once = await createSchedule(url, { conversation: 'kept', user: 'ann', text: 'once', at });
    const every = await createSchedule(url, { conversation: 'kept', user: 'ann', text: 'tick', every: '3s' });
    await expect.poll(() => occurrencesOf('kept', 'schedule.run'), { timeout: 60_000 }).not.toEqual([]);

    await redis.stop();
    await sleep(2000);
    await redis.start();

    // The gateway's fail-fast connection answers 503 until it has reconnected: a client asks again.
    await expect
      .poll(async () => (await api(url, 'GET', '/api/schedules?conversation=kept')).status)
      .toBe(200);
    const listed = await listSchedules(url, 'kept');
    expect(listed.map((s) => s.id).sort()).toEqual([once, every].sort());
    // Both run after the restart: the interval again, the one-off once.
    const before = (await occurrencesOf('kept', 'schedule.run')).length;
    await expect
      .poll(async () => (await occurrencesOf('kept', 'schedule.run')).length, { timeout: 60_000 })
      .toBeGreaterThan(before + 1);
    await expect
      .poll(async () => (await listSchedules(url, 'kept')).find((s) => s.id === once)?.last?.outcome, {
        timeout: 60_000,
      })
      .toBe('replied');
  });

  it('runs occurrences missed while down once, not once per missed interval', {
    timeout: 120_000,
  }, async () => {
    const id = await createSchedule(stack?.url ?? '', {
      conversation: 'missed',
      user: 'ann',
      text: 'tick',
      every: '2s',
    });
    await expect.poll(() => occurrencesOf('missed', 'schedule.run'), { timeout: 60_000 }).not.toEqual([]);
    // Down for four intervals or more; what ran before is known once it is down.
    let ranBefore = new Set<number>();
    const back = await downFor(9000, async () => {
      ranBefore = new Set(await occurrencesOf('missed', 'schedule.run'));
    });
    await sleep(6000);
    const runs = await occurrencesOf('missed', 'schedule.run');
    // Of the four or more occurrences due while down, exactly one ran (late); none ran twice.
    expect(runs.filter((o) => !ranBefore.has(o) && o < back)).toHaveLength(1);
    expect(new Set(runs).size).toBe(runs.length);
    expect(id).toMatch(/^s-/);
  });

  it('skips an occurrence missed while down with SANDBOT_SCHEDULE_CATCH_UP=false', {
    timeout: 120_000,
  }, async () => {
    Object.assign(config, { SANDBOT_SCHEDULE_CATCH_UP: false });
    await createSchedule(stack?.url ?? '', {
      conversation: 'skipped',
      user: 'ann',
      text: 'tick',
      every: '2s',
    });
    const back = await downFor(7000);
    await expect
      .poll(() => occurrencesOf('skipped', 'schedule.skipped'), { timeout: 30_000 })
      .not.toEqual([]);
    await expect.poll(() => occurrencesOf('skipped', 'schedule.run'), { timeout: 30_000 }).not.toEqual([]);
    const runs = await occurrencesOf('skipped', 'schedule.run');
    // Nothing due before sandbot came back ran; what ran is what came due after.
    expect(runs.filter((o) => o < back)).toEqual([]);
  });

  it('re-arms, when a worker starts, a schedule whose job scheduler went missing', {
    timeout: 120_000,
  }, async () => {
    Object.assign(config, { SANDBOT_SCHEDULE_CATCH_UP: true });
    const id = await createSchedule(stack?.url ?? '', {
      conversation: 'rearmed',
      user: 'ann',
      text: 'tick',
      every: '2s',
    });
    await downFor(1000, async () => {
      // As if Redis came back from a snapshot taken before the scheduler was written.
      const redisClient = new Redis(redis.url);
      const queue = new Queue(SCHEDULE_QUEUE, {
        connection: redisClient,
        prefix: bullPrefix(config.SANDBOT_INSTANCE),
      });
      expect(await queue.removeJobScheduler(id)).toBe(true);
      await queue.close();
      redisClient.disconnect();
    });
    const back = Date.now();
    await expect
      .poll(async () => (await occurrencesOf('rearmed', 'schedule.run')).filter((o) => o > back).length, {
        timeout: 30_000,
      })
      .toBeGreaterThan(0);
  });
});
