import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ConversationId, webConversationId } from '../../src/contracts/conversation/id.js';
import type { InboundMessage } from '../../src/contracts/protocol/inbound.js';
import { ConversationStore } from '../../src/shared/queue/conversation-store.js';
import { dropInstanceKeys, REDIS_URL, testInstance } from '../../testkit/redis.js';

const instance = testInstance('store');
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
    const turn = await store.nextTurn(c, 'w1', 50);
    expect(turn?.messages.map((m) => m.text)).toEqual(['m1', 'm2']);
    expect(turn?.turnId).toBe(`${c}#1-2`);
    // A message that arrives mid-turn keeps the holder from letting go, and makes the next turn.
    await store.submit(message(c, 'm3'));
    expect(await store.complete(turn!, 'w1')).toBe(true);
    expect(await store.release(c, 'w1')).toBe('more');
    const next = await store.nextTurn(c, 'w1', 50);
    expect(next?.messages.map((m) => m.text)).toEqual(['m3']);
    await store.complete(next!, 'w1');
    expect(await store.nextTurn(c, 'w1', 50)).toBeNull();
    expect(await store.release(c, 'w1')).toBe('released');
    expect(await store.acquire(c, 'w2', 5000)).toBe(true);
  });

  it('hands the unfinished turn, unchanged, to the next holder when the first one dies', async () => {
    const c = webConversationId('takeover');
    await store.submit(message(c, 'x1'));
    expect(await store.acquire(c, 'dead', 200)).toBe(true);
    const first = await store.nextTurn(c, 'dead', 50);
    await store.submit(message(c, 'x2'));
    await new Promise((r) => setTimeout(r, 300));
    expect(await store.renew(c, 'dead', 200)).toBe(false);
    expect(await store.acquire(c, 'alive', 5000)).toBe(true);
    const resumed = await store.nextTurn(c, 'alive', 50);
    expect(resumed?.turnId).toBe(first?.turnId);
    expect(resumed?.messages.map((m) => m.text)).toEqual(['x1']);
    // The dead holder can no longer finish or release anything.
    expect(await store.complete(first!, 'dead')).toBe(false);
    expect(await store.release(c, 'dead')).toBe('lost');
    await store.complete(resumed!, 'alive');
    expect((await store.nextTurn(c, 'alive', 50))?.messages.map((m) => m.text)).toEqual(['x2']);
  });

  it('refuses a turn to a worker that does not hold the lease', async () => {
    const c = webConversationId('nolease');
    await store.submit(message(c, 'q'));
    await expect(store.nextTurn(c, 'nobody', 50)).rejects.toThrow(/lease lost/);
    expect(await store.activeConversations()).toContain(c);
  });
});
