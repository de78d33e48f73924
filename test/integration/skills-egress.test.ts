import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDocker } from '../../sandbox/host/driver/docker-client.js';
import { webConversationId } from '../../src/contracts/conversation/id.js';
import { createRedis } from '../../src/shared/redis/connection.js';
import { SkillEnablement } from '../../src/shared/stores/skill-enablement.js';
import { REDIS_URL, testInstance } from '../../testkit/redis.js';
import { replyText } from '../helpers/shell-model.js';
import { weatherSkill } from '../helpers/skill-fixtures.js';
import { SkillNetStack } from '../helpers/skill-net-stack.js';
import { registryOf, skillModel, vetSkill } from '../helpers/skill-stack.js';
import { testConfig } from '../helpers/stack.js';

/**
 * A skill's declared hosts on the real engine and egress proxy (run under the heavy lock): the host the
 * admin approved is reachable while the skill is enabled, through the proxy; a declared host the admin
 * did not approve and an undeclared one stay blocked; disabling the skill takes the network away.
 */

const OUTSIDE = '198.51.100.10';
const config = testConfig(testInstance('skills-net'), {
  SANDBOT_SKILLS: 'web:wx=weather',
  SANDBOT_EGRESS_PORT: '0',
});
const redis = createRedis(REDIS_URL, 'skills-net-test');
const net = new SkillNetStack(config, createDocker(undefined));

beforeAll(async () => {
  await net.start({
    name: `sbx-outside-skills-${process.pid}`,
    subnet: '198.51.100.0/24',
    address: OUTSIDE,
    script: skillModel,
    // The skill declares two hosts; the admin approves only one. The outside listens on 8080 (a grant
    // without a port means 80 and 443).
    prepare: () =>
      vetSkill(registryOf(config), weatherSkill(['api.example.test:8080', 'other.example.test:8080']), [
        'api.example.test:8080',
      ]),
  });
});

afterAll(async () => {
  await net.stop();
  redis.disconnect();
});

const ask = (text: string) => replyText(net.url, 'wx', text);

describe('skill hosts and the egress policy', () => {
  it('lets the skill’s tool reach the approved host through the proxy while it is enabled', async () => {
    const text = await ask(`call forecast {"port":${net.outsidePort}}`);
    expect(text).toContain('outside says hi to /forecast');
    expect(net.records).toContainEqual(
      expect.objectContaining({ conversation: 'web:wx', host: 'api.example.test', allowed: true }),
    );
  });

  it('keeps a declared but unapproved host and an undeclared host blocked, with the skill enabled', async () => {
    const text = await ask(
      `sh curl -s http://other.example.test:${net.outsidePort}/declared; curl -s http://undeclared.example.test:${net.outsidePort}/undeclared`,
    );
    expect(text).toContain(`other.example.test:${net.outsidePort} is not granted`);
    expect(text).toContain(`undeclared.example.test:${net.outsidePort} is not granted`);
    expect(text).not.toContain('outside says hi');
    for (const host of ['other.example.test', 'undeclared.example.test']) {
      expect(net.records).toContainEqual(
        expect.objectContaining({ conversation: 'web:wx', host, allowed: false }),
      );
    }
  });

  it('takes the approved host away once the skill is disabled', async () => {
    const enablement = new SkillEnablement(redis, config.SANDBOT_INSTANCE, config.SANDBOT_SKILLS);
    await enablement.disable(webConversationId('wx'), 'weather', 'admin:test');
    const text = await ask(
      `sh env | grep -ic proxy; curl -s -m 3 http://api.example.test:${net.outsidePort}/after || echo no-network`,
    );
    expect(text).toMatch(/^tool said: exit code \d+\n0\n/);
    expect(text).toContain('no-network');
    expect(text).not.toContain('outside says hi');
  });
});
