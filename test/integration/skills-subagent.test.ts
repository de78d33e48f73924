import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { ConversationId } from '../../src/contracts/conversation/id.js';
import { SkillEnablement, SkillRules } from '../../src/shared/stores/skill-enablement.js';
import { dropInstanceKeys, REDIS_URL, testInstance } from '../../testkit/redis.js';

/** A sub-agent never gets a skill (nor so its hosts) its parent lacks, whatever config or admins say. */

const redis = new Redis(REDIS_URL);
const instance = testInstance('skills-sub');
afterAll(async () => {
  await dropInstanceKeys(instance);
  redis.disconnect();
});

describe('skills of sub-agents', () => {
  it('are at most the parent’s, through every level of delegation', async () => {
    const rules = SkillRules.parse('web:p=greeter,weather;web:p:sub-1=dropper');
    const enablement = new SkillEnablement(redis, instance, rules);
    const parent = ConversationId.parse('web:p');
    const child = ConversationId.parse('web:p:sub-1');
    const grandchild = ConversationId.parse('web:p:sub-1.1');
    expect((await enablement.enabledFor(child)).map((r) => r.name)).toEqual(['greeter', 'weather']);
    await enablement.enable(grandchild, { name: 'other' }, 'admin:test');
    await enablement.disable(parent, 'weather', 'admin:test');
    expect((await enablement.enabledFor(child)).map((r) => r.name)).toEqual(['greeter']);
    expect((await enablement.enabledFor(grandchild)).map((r) => r.name)).toEqual(['greeter']);
  });
});
