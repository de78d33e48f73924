import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import type { WorkspaceSnapshot } from '../../sandbox/host/driver/workspace-snapshot.js';
import { webConversationId } from '../../src/contracts/conversation/id.js';
import { WorkspaceBaselines } from '../../src/worker/audit/workspace-baselines.js';
import { dropInstanceKeys, REDIS_URL, testInstance } from '../../testkit/redis.js';

/**
 * When a turn may start from the snapshot the previous turn kept, on real Redis, with two workers'
 * stores side by side (each worker keeps its own in memory; the mark in Redis is shared).
 */

const instance = testInstance('baselines');
const redis = new Redis(REDIS_URL);
const conversation = webConversationId('kept');

afterAll(async () => {
  redis.disconnect();
  await dropInstanceKeys(instance);
});

function snapshot(files: string[], truncated = false): WorkspaceSnapshot {
  return {
    entries: Object.fromEntries(
      files.map((f) => [`/workspace/${f}`, { type: 'file' as const, size: 1, mtimeMs: 0, sha256: f }]),
    ),
    truncated,
  };
}

describe('workspace baselines', () => {
  it('hands the kept snapshot to the next turn on the same container, once', async () => {
    const worker = new WorkspaceBaselines(redis, instance);
    const first = await worker.claim(conversation, 'c1');
    expect(first.snapshot).toBeUndefined();
    expect(await worker.keep(conversation, first.claim, 'c1', snapshot(['a']))).toBe(true);
    const second = await worker.claim(conversation, 'c1');
    expect(second.snapshot).toEqual(snapshot(['a']));
    // Claimed means used up: a turn that keeps nothing leaves none for the one after.
    expect((await worker.claim(conversation, 'c1')).snapshot).toBeUndefined();
  });

  it('gives nothing for another container (recreated, reset, wiped)', async () => {
    const worker = new WorkspaceBaselines(redis, instance);
    const { claim } = await worker.claim(conversation, 'c1');
    await worker.keep(conversation, claim, 'c1', snapshot(['a']));
    expect((await worker.claim(conversation, 'c2')).snapshot).toBeUndefined();
  });

  it('gives nothing once another worker ran a turn in between, whether or not it kept one', async () => {
    const a = new WorkspaceBaselines(redis, instance);
    const b = new WorkspaceBaselines(redis, instance);
    await a.keep(conversation, (await a.claim(conversation, 'c1')).claim, 'c1', snapshot(['a']));
    // Worker b runs a turn (it may end badly and keep nothing).
    await b.claim(conversation, 'c1');
    expect((await a.claim(conversation, 'c1')).snapshot).toBeUndefined();
    // And the other way round: b kept one, a ran a turn since.
    await b.keep(conversation, (await b.claim(conversation, 'c1')).claim, 'c1', snapshot(['b']));
    await a.claim(conversation, 'c1');
    expect((await b.claim(conversation, 'c1')).snapshot).toBeUndefined();
  });

  it('lets only the turn that holds the workspace keep its snapshot (a lost lease keeps nothing)', async () => {
    const a = new WorkspaceBaselines(redis, instance);
    const b = new WorkspaceBaselines(redis, instance);
    const stale = await a.claim(conversation, 'c1');
    await b.claim(conversation, 'c1'); // took the conversation over
    expect(await a.keep(conversation, stale.claim, 'c1', snapshot(['stale']))).toBe(false);
    expect((await a.claim(conversation, 'c1')).snapshot).toBeUndefined();
  });

  it('starts a claimed pooled sandbox from its seed, and keeps neither cut-short nor oversized snapshots', async () => {
    const worker = new WorkspaceBaselines(redis, instance, { maxEntries: 2, maxTotalEntries: 3 });
    await worker.seed(conversation, 'p1', snapshot(['.aws/credentials']));
    expect((await worker.claim(conversation, 'p1')).snapshot).toEqual(snapshot(['.aws/credentials']));
    const { claim } = await worker.claim(conversation, 'p1');
    expect(await worker.keep(conversation, claim, 'p1', snapshot(['a'], true))).toBe(false);
    expect(await worker.keep(conversation, claim, 'p1', snapshot(['a', 'b', 'c']))).toBe(false);
    // Over the total, the least recently kept conversation's snapshot goes first.
    const other = webConversationId('other');
    await worker.keep(conversation, claim, 'p1', snapshot(['a', 'b']));
    await worker.keep(other, (await worker.claim(other, 'o1')).claim, 'o1', snapshot(['x', 'y']));
    expect((await worker.claim(conversation, 'p1')).snapshot).toBeUndefined();
    expect((await worker.claim(other, 'o1')).snapshot).toEqual(snapshot(['x', 'y']));
  });
});
