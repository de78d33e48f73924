import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import type { ConversationId } from '../../src/contracts/conversation/id.js';
import { createLogger } from '../../src/contracts/log/logger.js';
import { hostCommandKeys } from '../../src/contracts/redis/keys.js';
import {
  askMove,
  type FreeCommand,
  type MoveCommand,
  sendFree,
  serveHostCommands,
} from '../../src/shared/hosts/host-commands.js';
import { dropInstanceKeys, REDIS_URL, testInstance } from '../../testkit/redis.js';

/**
 * The way `sandbot host drain` reaches a host's workers, over a real Redis: a move is taken by a worker
 * of that host only and answered to the asker; a free waits for a worker of its host that is not
 * running yet; a command for another host, or a stale or malformed one, is not acted on.
 */
const instance = testInstance('host-commands');
const redis = new Redis(REDIS_URL);
const logger = createLogger({ SANDBOT_LOG_LEVEL: 'silent' });

afterAll(async () => {
  await dropInstanceKeys(instance);
  redis.disconnect();
});

function serve(host: string) {
  const moves: MoveCommand[] = [];
  const frees: FreeCommand[] = [];
  const server = serveHostCommands(
    redis,
    instance,
    host,
    {
      move: async (command) => {
        moves.push(command);
        if (command.conversation === 'web:broken') throw new Error('the target engine refused the files');
        return { moved: true, line: `moved to ${host} (12 bytes)` };
      },
      free: async (command) => {
        frees.push(command);
      },
    },
    logger,
  );
  return { server, moves, frees };
}

const ask = (conversation: string) => ({
  conversation: conversation as MoveCommand['conversation'],
  from: 'host-b',
  to: 'host-a',
  maxBytes: 1024,
  by: 'admin:ops' as const,
});

describe('host commands', () => {
  it('a move is answered by a worker of its host, its failure in words; others see nothing', async () => {
    const a = serve('host-a');
    const b = serve('host-b');
    try {
      expect(await askMove(redis, instance, 'host-a', ask('web:one'), 5000)).toEqual({
        moved: true,
        line: 'moved to host-a (12 bytes)',
      });
      expect(await askMove(redis, instance, 'host-a', ask('web:broken'), 5000)).toEqual({
        moved: false,
        line: 'not moved: the target engine refused the files',
      });
      expect(a.moves.map((m) => m.conversation)).toEqual(['web:one', 'web:broken']);
      expect(a.moves[0]).toMatchObject({ kind: 'move', from: 'host-b', to: 'host-a', by: 'admin:ops' });
      expect(b.moves).toEqual([]);
    } finally {
      await Promise.all([a.server.stop(), b.server.stop()]);
    }
  });

  it('a free waits for its host’s worker; stale and malformed commands are not acted on', async () => {
    await sendFree(redis, instance, 'host-c', {
      kind: 'free',
      conversation: 'web:gone' as ConversationId,
      to: 'host-a',
    });
    const key = hostCommandKeys.requests(instance, 'host-c');
    await redis.lpush(key, JSON.stringify({ kind: 'wipe', conversation: 'web:gone' }));
    await redis.lpush(
      key,
      JSON.stringify({
        ...ask('web:late'),
        kind: 'move',
        id: crypto.randomUUID(),
        expiresAt: Date.now() - 1,
      }),
    );
    await sendFree(redis, instance, 'host-c', {
      kind: 'free',
      conversation: 'web:last' as ConversationId,
      to: 'host-a',
    });
    const c = serve('host-c');
    try {
      const deadline = Date.now() + 10_000;
      while (c.frees.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(c.frees.map((f) => f.conversation)).toEqual(['web:gone', 'web:last']);
      expect(c.moves).toEqual([]);
      expect(await redis.llen(key)).toBe(0);
    } finally {
      await c.server.stop();
    }
  });

  it('a worker that stops cuts its move in flight, and the asker is told', async () => {
    const server = serveHostCommands(
      redis,
      instance,
      'host-d',
      {
        move: (_command, signal) =>
          new Promise((resolve) => {
            started();
            signal.addEventListener('abort', () =>
              resolve({ moved: false, line: 'not moved: the copy was stopped' }),
            );
          }),
        free: async () => undefined,
      },
      logger,
    );
    let started: () => void = () => undefined;
    const taken = new Promise<void>((resolve) => {
      started = resolve;
    });
    const reply = askMove(redis, instance, 'host-d', ask('web:cut'), 60_000);
    await taken;
    const began = Date.now();
    await server.stop();
    expect(Date.now() - began).toBeLessThan(5000);
    expect(await reply).toEqual({ moved: false, line: 'not moved: the copy was stopped' });
  });

  it('says so when no worker of the host takes a move', async () => {
    const reply = await askMove(redis, instance, 'host-none', ask('web:nobody'), 5000, 1000);
    expect(reply).toEqual({ moved: false, line: 'not moved: no worker of host-none took it within 1 s' });
    // Taken back: a worker starting later does not act on it.
    expect(await redis.llen(hostCommandKeys.requests(instance, 'host-none'))).toBe(0);
  });
});
