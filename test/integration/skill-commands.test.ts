import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { webConversationId } from '../../src/contracts/conversation/id.js';
import { SkillCommandClient, serveSkillCommands } from '../../src/shared/queue/skill-commands.js';
import { createRedis } from '../../src/shared/redis/connection.js';
import { dropInstanceKeys, REDIS_URL, testInstance } from '../../testkit/redis.js';

// Chat skill commands travel from a gateway to one worker and back through Redis.
const instance = testInstance('skill-commands');
const redis = createRedis(REDIS_URL, 'skill-commands-test');
const conversation = webConversationId('sc');
const by = 'admin:slack:U1' as const;

afterAll(async () => {
  await dropInstanceKeys(instance);
  redis.disconnect();
});

describe('skill commands', () => {
  it('are answered by one worker, in its words', async () => {
    const seen: string[] = [];
    const served = [1, 2].map((n) =>
      serveSkillCommands(
        redis,
        instance,
        async (request) => {
          seen.push(`${n}:${request.command.action}`);
          return `worker ${n} did ${request.command.action}`;
        },
        pino({ level: 'silent' }),
      ),
    );
    try {
      const answer = await new SkillCommandClient(redis, instance).run(conversation, { action: 'list' }, by);
      expect(answer).toMatch(/^worker [12] did list$/);
      expect(seen).toHaveLength(1);
    } finally {
      await Promise.all(served.map((s) => s.stop()));
    }
  });

  it('answer a malformed command at once, and say so when no worker answers (which then never acts on it)', async () => {
    const client = new SkillCommandClient(redis, instance, 1);
    expect(await client.run(conversation, { action: 'invalid', message: 'name one skill' }, by)).toBe(
      'name one skill',
    );
    expect(await client.run(conversation, { action: 'disable', name: 'greeter' }, by)).toMatch(
      /No worker answered within 1 s/,
    );
    await new Promise((resolve) => setTimeout(resolve, 50));
    const seen: string[] = [];
    const served = serveSkillCommands(
      redis,
      instance,
      async (request) => {
        seen.push(request.command.action);
        return 'done';
      },
      pino({ level: 'silent' }),
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    await served.stop();
    expect(seen).toEqual([]);
  });
});
