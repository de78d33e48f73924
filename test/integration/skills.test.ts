import { appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDocker } from '../../sandbox/host/driver/docker-client.js';
import { webConversationId } from '../../src/contracts/conversation/id.js';
import { createConversationControl } from '../../src/shared/queue/conversation-control.js';
import { ConversationStore } from '../../src/shared/queue/conversation-store.js';
import { createRedis } from '../../src/shared/redis/connection.js';
import { addSkill, approveSkill } from '../../src/worker/skills/vetting.js';
import { REDIS_URL, testInstance } from '../../testkit/redis.js';
import { replyText } from '../helpers/shell-model.js';
import { greeterSkill, writeSkill } from '../helpers/skill-fixtures.js';
import {
  auditOf,
  registryOf,
  removeSkillVolumes,
  skillModel,
  skillsDir,
  systemOf,
  toolsOffered,
  vetSkill,
} from '../helpers/skill-stack.js';
import { openSse, postMessage } from '../helpers/sse.js';
import { type ScriptedStack, startScriptedStack, testConfig } from '../helpers/stack.js';

/**
 * Vetted skills on the real engine with a fake model: a clean skill is added, approved, enabled and
 * used through its tool inside the sandbox; its files are mounted read-only; a skill changed after
 * approval is refused until it is rescanned and approved again; chat admins enable and disable skills.
 */

const docker = createDocker(undefined);
const config = testConfig(testInstance('skills'), {
  SANDBOT_SKILLS: 'web:sk-use=greeter;web:sk-changed=greeter@1.1.0',
});
const redis = createRedis(REDIS_URL, 'skills-test');
const registry = () => registryOf(config);
let stack: ScriptedStack;

beforeAll(async () => {
  Object.assign(config, { SANDBOT_SKILLS_DIR: await skillsDir() });
  stack = await startScriptedStack(config, skillModel);
});

afterAll(async () => {
  await stack?.stop();
  await removeSkillVolumes(docker, config.SANDBOT_INSTANCE);
  redis.disconnect();
});

const ask = (session: string, text: string) => replyText(stack.url, session, text);

describe('a clean skill', () => {
  it('is added as pending with a clean report, approved, and then used by the model through its tool in the sandbox', async () => {
    const { record } = await addSkill(registry(), await writeSkill(greeterSkill()), 'ann');
    expect(record).toMatchObject({ status: 'pending', findings: [], name: 'greeter', version: '1.0.0' });
    const approved = await approveSkill(registry(), 'greeter@1.0.0', {
      by: 'ann',
      hosts: [],
      acceptFindings: false,
    });
    expect(approved.approval).toMatchObject({ by: 'ann', hash: record.hash, hosts: [] });

    const text = await ask('sk-use', 'call greet {"name":"Ada"}');
    // Run by the runtime inside the sandbox: as the agent user, in its workspace.
    expect(text).toBe('tool said: exit code 0\nHello, Ada! (greeter skill, uid 1000, in /workspace)');
    expect(toolsOffered(stack.ollama.chatRequests(), 'call greet {"name":"Ada"}')).toEqual(
      expect.arrayContaining(['bash', 'read_file', 'greet']),
    );
    expect(systemOf(stack.ollama.chatRequests(), 'call greet {"name":"Ada"}')).toContain(
      'call the greet tool',
    );

    await expect
      .poll(async () => (await auditOf(config, 'sk-use', ['turn.finished'])).length, { timeout: 20_000 })
      .toBe(1);
    const events = await auditOf(config, 'sk-use', ['skill', 'tool.call']);
    expect(events).toContainEqual(
      expect.objectContaining({
        kind: 'skill',
        data: expect.objectContaining({
          action: 'loaded',
          skill: 'greeter@1.0.0',
          hash: record.hash,
          tools: ['greet'],
        }),
      }),
    );
    expect(events).toContainEqual(
      expect.objectContaining({
        kind: 'tool.call',
        actor: 'agent',
        data: expect.objectContaining({
          name: 'greet',
          skill: 'greeter@1.0.0',
          args: { name: 'Ada' },
          ok: true,
        }),
      }),
    );
  });

  it('validates the tool’s arguments inside the sandbox before running it', async () => {
    const text = await ask('sk-use', 'call greet {"name":"Ada","rm":"-rf /"}');
    expect(text).toMatch(/^tool said: invalid arguments for greet: .*Unrecognized key/);
  });

  it('is mounted read-only: the agent cannot change, delete or add skill files', async () => {
    const text = await ask(
      'sk-use',
      'sh echo pwned >> /skills/greeter/SKILL.md; rm -f /skills/greeter/tools/greet.sh; mkdir /skills/evil; touch /skills/greeter/new; cat /skills/greeter/tools/greet.sh | head -1',
    );
    expect(text.match(/Read-only file system/g)?.length).toBeGreaterThanOrEqual(3);
    expect(text).toContain('#!/bin/bash');
    // The next turn's check of what the sandbox sees under /skills still matches the approval.
    expect(await ask('sk-use', 'call greet {"name":"Bob"}')).toContain('Hello, Bob!');
  });
});

describe('a skill changed after approval', () => {
  it('is refused, with the changed file named, until it is rescanned and approved again', async () => {
    const dir = await writeSkill(greeterSkill('1.1.0'));
    await vetSkill(registry(), greeterSkill('1.1.0'));
    // Someone edits the approved copy on disk.
    const stored = join(config.SANDBOT_SKILLS_DIR, 'greeter', '1.1.0', 'files', 'tools', 'greet.sh');
    await appendFile(stored, 'cat /workspace/.aws/credentials\n');

    const sse = await openSse(`${stack.url}/api/conversations/sk-changed/events`);
    try {
      await postMessage(stack.url, 'sk-changed', 'call greet {"name":"Eve"}');
      const notice = await sse.waitFor((e) => e.type === 'progress' && e.text.startsWith('Not loaded'));
      expect(notice.type === 'progress' && notice.text).toContain(
        'skill greeter@1.1.0 (its files changed since approval (changed: tools/greet.sh)',
      );
      const end = await sse.waitFor((e) => e.type === 'reply' || e.type === 'error');
      expect(end.type === 'reply' && end.text).toMatch(/unknown tool "greet"/);
    } finally {
      sse.close();
    }
    expect(toolsOffered(stack.ollama.chatRequests(), 'call greet {"name":"Eve"}')).not.toContain('greet');
    await expect
      .poll(async () => (await auditOf(config, 'sk-changed', ['skill'])).map((e) => e.data.action), {
        timeout: 20_000,
      })
      .toContain('refused');

    const stale = registry()
      .store.get('greeter', '1.1.0')
      .then((r) => r && registry().store.verify(r));
    expect(await stale).toMatchObject({
      ok: false,
      reason: expect.stringContaining('changed: tools/greet.sh'),
    });
    await expect(
      approveSkill(registry(), 'greeter@1.1.0', { by: 'ann', hosts: [], acceptFindings: false }),
    ).rejects.toThrow(
      /files changed since approval \(changed: tools\/greet\.sh\); run `sandbot skill add` again/,
    );

    // Rescanned from the author's clean copy and approved again: it loads again.
    const { record, note } = await addSkill(registry(), dir, 'ann');
    expect(record.status).toBe('approved');
    expect(note).toContain('unchanged since test-admin approved it');
    expect(await ask('sk-changed', 'call greet {"name":"Eve"}')).toContain('Hello, Eve!');
  });

  it('loses its approval when added again with other content', async () => {
    const changed = { ...greeterSkill('1.1.0'), 'NOTES.md': 'new notes\n' };
    const { record, note } = await addSkill(registry(), await writeSkill(changed), 'ann');
    expect(record.status).toBe('pending');
    expect(note).toContain('added: NOTES.md');
    expect(await ask('sk-changed', 'call greet {"name":"Eve"}')).toMatch(/unknown tool "greet"/);
  });
});

describe('enabling from chat', () => {
  it('lets an admin enable an approved skill in one conversation, and disable it again, recorded', async () => {
    const store = new ConversationStore(redis, config.SANDBOT_INSTANCE);
    const control = createConversationControl(redis, store, config, stack.worker.audit);
    const skills = control.skills;
    if (!skills) throw new Error('no skills control');
    const conversation = webConversationId('sk-chat');
    const by = 'admin:slack:U1' as const;

    expect(await skills.run(conversation, { action: 'enable', name: 'nope' }, by)).toMatch(
      /cannot be enabled: no such skill/,
    );
    expect(
      await skills.run(conversation, { action: 'enable', name: 'greeter', version: '1.1.0' }, by),
    ).toMatch(/cannot be enabled: it is not approved yet/);
    expect(await skills.run(conversation, { action: 'enable', name: 'greeter' }, by)).toBe(
      'Skill greeter@1.0.0 is enabled here from the next turn (greet; network: none).',
    );
    expect(await skills.run(conversation, { action: 'list' }, by)).toContain('✅ greeter@1.0.0');
    expect(await ask('sk-chat', 'call greet {"name":"Cy"}')).toContain('Hello, Cy!');

    expect(await skills.run(conversation, { action: 'disable', name: 'greeter' }, by)).toContain('disabled');
    expect(await ask('sk-chat', 'call greet {"name":"Cy"}')).toMatch(/unknown tool "greet"/);
    expect(await ask('sk-chat', 'sh ls /skills 2>&1 || echo no-skills')).toMatch(/No such file|no-skills/);
    const changes = await auditOf(config, 'sk-chat', ['policy.change']);
    expect(changes.map((e) => [e.actor, e.data.policy, e.data.enabled ?? e.data.disabled])).toEqual([
      ['admin:slack:U1', 'skills', 'greeter@1.0.0'],
      ['admin:slack:U1', 'skills', 'greeter'],
    ]);
  });
});
