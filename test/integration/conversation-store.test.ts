import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ConversationId, webConversationId } from '../../src/contracts/conversation/id.js';
import type { InboundMessage } from '../../src/contracts/protocol/inbound.js';
import { conversationKeys } from '../../src/contracts/redis/keys.js';
import { ConversationStore, type Turn } from '../../src/shared/queue/conversation-store.js';
import { dropInstanceKeys, REDIS_URL, testInstance } from '../../testkit/redis.js';

const instance = testInstance('store');
/** The takeover grace these tests use (the worker uses its lease time). */
const GRACE = 400;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function asTurn(next: Turn | { wait: number } | null): Turn {
  if (!next || 'wait' in next) throw new Error(`expected a turn, got ${JSON.stringify(next)}`);
  return next;
}
let redis: Redis;
let store: ConversationStore;

const message = (conversation: ConversationId, id: string, text = id): InboundMessage => ({
  id,
  conversation,
  platform: 'web',
  user: { id: 'u1' },
  text,
  receivedAt: new Date().toISOString(),
  route: {},
  files: [],
});

beforeAll(() => {
  redis = new Redis(REDIS_URL);
  store = new ConversationStore(redis, instance);
});
afterAll(async () => {
  await dropInstanceKeys(instance);
  redis.disconnect();
});

describe('ConversationStore (real Redis)', () => {
  it('numbers messages in arrival order and refuses a message seen before', async () => {
    const c = webConversationId('order');
    expect(await store.submit(message(c, 'a'))).toBe(1);
    expect(await store.submit(message(c, 'b'))).toBe(2);
    expect(await store.submit(message(c, 'a'))).toBeNull();
    expect(await store.pendingCount(c)).toBe(2);
  });

  it('lets one holder at a time run a conversation, batching what is pending into one turn', async () => {
    const c = webConversationId('lease');
    await store.submit(message(c, 'm1'));
    await store.submit(message(c, 'm2'));
    expect(await store.acquire(c, 'w1', 5000)).toBe(true);
    expect(await store.acquire(c, 'w2', 5000)).toBe(false);
    const turn = asTurn(await store.nextTurn(c, 'w1', 50, GRACE));
    expect(turn.messages.map((m) => m.text)).toEqual(['m1', 'm2']);
    expect(turn.turnId).toBe(`${c}#1-2`);
    // A message that arrives mid-turn keeps the holder from letting go, and makes the next turn.
    await store.submit(message(c, 'm3'));
    expect(await store.complete(turn, 'w1')).toBe(true);
    expect(await store.release(c, 'w1')).toBe('more');
    const next = asTurn(await store.nextTurn(c, 'w1', 50, GRACE));
    expect(next.messages.map((m) => m.text)).toEqual(['m3']);
    await store.complete(next, 'w1');
    expect(await store.nextTurn(c, 'w1', 50, GRACE)).toBeNull();
    expect(await store.release(c, 'w1')).toBe('released');
    expect(await store.acquire(c, 'w2', 5000)).toBe(true);
  });

  it('hands the unfinished turn, unchanged, to the next holder after a grace when the first one dies', async () => {
    const c = webConversationId('takeover');
    await store.submit(message(c, 'x1'));
    expect(await store.acquire(c, 'dead', 200)).toBe(true);
    const first = asTurn(await store.nextTurn(c, 'dead', 50, GRACE));
    await store.submit(message(c, 'x2'));
    await sleep(300);
    expect(await store.acquire(c, 'alive', 5000)).toBe(true);
    // The first runner may still be finishing it: the new holder waits one grace before taking over.
    const wait = await store.nextTurn(c, 'alive', 50, GRACE);
    expect(wait).toEqual({ wait: GRACE });
    await sleep(GRACE + 50);
    const resumed = asTurn(await store.nextTurn(c, 'alive', 50, GRACE));
    expect(resumed.turnId).toBe(first.turnId);
    expect(resumed.messages.map((m) => m.text)).toEqual(['x1']);
    expect(resumed.takenOverFrom).toBe('dead');
    // The dead runner can no longer finish, renew or release anything.
    expect(await store.complete(first, 'dead')).toBe(false);
    expect(await store.renew(c, 'dead', 5000)).toBe(false);
    expect(await store.release(c, 'dead')).toBe('lost');
    expect(await store.complete(resumed, 'alive')).toBe(true);
    expect(asTurn(await store.nextTurn(c, 'alive', 50, GRACE)).messages.map((m) => m.text)).toEqual(['x2']);
  });

  it('lets a runner whose lease lapsed (Redis away) finish its turn, which then never runs again', async () => {
    const c = webConversationId('lapsed');
    await store.submit(message(c, 'y1'));
    expect(await store.acquire(c, 'slow', 200)).toBe(true);
    const turn = asTurn(await store.nextTurn(c, 'slow', 50, GRACE));
    await sleep(300);
    // Another worker takes the lease meanwhile, and must wait for the runner.
    expect(await store.acquire(c, 'other', 5000)).toBe(true);
    expect(await store.nextTurn(c, 'other', 50, GRACE)).toEqual({ wait: GRACE });
    expect(await store.complete(turn, 'slow')).toBe(true);
    await sleep(GRACE + 50);
    expect(await store.nextTurn(c, 'other', 50, GRACE)).toBeNull();
    expect(await store.pendingCount(c)).toBe(0);
  });

  it('gives a lapsed lease back to its runner while nobody else holds it, and never over another holder', async () => {
    const c = webConversationId('renew');
    await store.submit(message(c, 'z1'));
    expect(await store.acquire(c, 'w1', 200)).toBe(true);
    asTurn(await store.nextTurn(c, 'w1', 50, GRACE));
    await sleep(300);
    expect(await store.leaseHolder(c)).toBeNull();
    expect(await store.renew(c, 'w1', 5000)).toBe(true);
    expect(await store.leaseHolder(c)).toBe('w1');
    expect(await store.renew(c, 'stranger', 5000)).toBe(false);
    await redis.del(conversationKeys(instance, c).lease);
    expect(await store.acquire(c, 'w2', 5000)).toBe(true);
    expect(await store.renew(c, 'w1', 5000)).toBe(false);
  });

  it('hands a turn that waits in line to the next holder at once, as its own', async () => {
    const c = webConversationId('yield');
    await store.submit(message(c, 'q1'));
    expect(await store.acquire(c, 'w1', 5000)).toBe(true);
    const turn = asTurn(await store.nextTurn(c, 'w1', 50, GRACE));
    await store.yieldTurn(c, 'w1');
    expect(await store.acquire(c, 'w2', 5000)).toBe(true);
    const again = asTurn(await store.nextTurn(c, 'w2', 50, GRACE));
    expect(again.turnId).toBe(turn.turnId);
    expect(again.takenOverFrom).toBeUndefined();
    expect(await store.complete(turn, 'w1')).toBe(false);
    expect(await store.complete(again, 'w2')).toBe(true);
  });

  it('refuses a turn to a worker that does not hold the lease', async () => {
    const c = webConversationId('nolease');
    await store.submit(message(c, 'q'));
    await expect(store.nextTurn(c, 'nobody', 50, GRACE)).rejects.toThrow(/lease lost/);
    expect(await store.activeConversations()).toContain(c);
  });
});
