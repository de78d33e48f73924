import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { ConversationId } from '../../src/contracts/conversation/id.js';
import type { OutboundEvent } from '../../src/contracts/protocol/outbound.js';
import { TaskStore } from '../../src/shared/stores/task-store.js';
import { subAgentOutbound } from '../../src/worker/delegation/delegation-outbound.js';
import { awaitResult } from '../../src/worker/delegation/delegation-wait.js';
import { dropInstanceKeys, REDIS_URL, testInstance } from '../../testkit/redis.js';

/**
 * The delegation's time limit and hand-back on real Redis: a parent waits for its sub-agent's result
 * until the deadline or until its own turn ends; a sub-agent's final event, published by whichever
 * worker ran it, is what the parent receives. The task registry keeps counts atomic across workers.
 */

const instance = testInstance('delegation-wait');
const redis = new Redis(REDIS_URL);
const child = ConversationId.parse('slack:T1:C2:1700000000.000100:sub-1');

afterAll(async () => {
  redis.disconnect();
  await dropInstanceKeys(instance);
});

describe('waiting for a sub-agent', () => {
  it('gets the result its worker published, and shows the thread only a short line', async () => {
    const shown: OutboundEvent[] = [];
    const publish = subAgentOutbound(redis, instance, async (event) => {
      shown.push(event);
    });
    const waiting = awaitResult(
      redis,
      instance,
      child,
      Date.now() + 10_000,
      new AbortController().signal,
      50,
    );
    await publish({
      id: 'x#1-1:reply',
      conversation: child,
      platform: 'slack',
      route: { team: 'T1', channel: 'C2', thread_ts: '1700000000.000100' },
      type: 'reply',
      text: 'the result',
      files: [],
    });
    expect(await waiting).toEqual({
      kind: 'result',
      result: { kind: 'reply', text: 'the result', files: [] },
    });
    expect(shown.map((e) => (e.type === 'reply' ? e.text : ''))).toEqual(['🤖 sub-agent sub-1 finished.']);
  });

  it('gives up at the deadline, or when the delegating turn ends', async () => {
    const other = ConversationId.parse('slack:T1:C2:1700000000.000100:sub-2');
    expect(
      await awaitResult(redis, instance, other, Date.now() + 200, new AbortController().signal, 50),
    ).toEqual({
      kind: 'timeout',
    });
    const turn = new AbortController();
    const waiting = awaitResult(redis, instance, other, Date.now() + 10_000, turn.signal, 50);
    turn.abort();
    expect(await waiting).toEqual({ kind: 'cancelled' });
  });

  it('counts sub-agents atomically, however many delegations reserve at once', async () => {
    const tasks = new TaskStore(redis, instance);
    const counts = await Promise.all(
      Array.from({ length: 20 }, () => tasks.bump('slack:T1:C2:1.2', 'children')),
    );
    expect(counts.sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
  });
});
