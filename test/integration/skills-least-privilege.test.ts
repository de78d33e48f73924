import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDocker } from '../../sandbox/host/driver/docker-client.js';
import { ConversationId, webConversationId } from '../../src/contracts/conversation/id.js';
import { createRedis } from '../../src/shared/redis/connection.js';
import { NetworkPolicyStore } from '../../src/shared/stores/policy-store.js';
import { SkillEnablement } from '../../src/shared/stores/skill-enablement.js';
import type { FakeChatRequest, FakeStep } from '../../testkit/fakes/fake-ollama.js';
import { REDIS_URL, testInstance } from '../../testkit/redis.js';
import { replyText } from '../helpers/shell-model.js';
import type { SkillFiles } from '../helpers/skill-fixtures.js';
import { SkillNetStack } from '../helpers/skill-net-stack.js';
import { registryOf, skillModel, vetSkill } from '../helpers/skill-stack.js';
import { testConfig, UNDER_GVISOR } from '../helpers/stack.js';

/**
 * Least privilege for skills on the real engine and egress proxy (gVisor with SANDBOT_TEST_LAYER=gvisor,
 * runc otherwise): a skill's approved host is reachable by that skill's tool processes alone, through
 * a proxy credential of its own that only they receive (under a uid of their own); not by the agent's
 * commands, not by a sub-agent without the skill, not with a forged credential, and not after the
 * skill is disabled, even by a tool process already running.
 */

const OUTSIDE = '203.0.114.10';
const HOST = 'api.example.test:8080';
const config = testConfig(testInstance('skills-lp'), {
  SANDBOT_EGRESS_PORT: '0',
  SANDBOT_DELEGATE_MAX_FANOUT: '4',
});
const redis = createRedis(REDIS_URL, 'skills-lp-test');
const parent = webConversationId('lp');
const net = new SkillNetStack(config, createDocker(undefined));
const records = net.records;

/** A skill whose tools reach its host, show who they run as, linger, or fetch twice 5 s apart. */
function pollerSkill(): SkillFiles {
  const tool = (name: string, run: string, description: string) => ({
    name,
    description,
    run,
    interpreter: 'bash',
    input: { type: 'object', properties: { path: { type: 'string', pattern: '^[a-z0-9-]+$' } } },
  });
  const fetch = 'curl -s -m 5 "http://api.example.test:8080/$1"; echo';
  return {
    'skill.json': JSON.stringify({
      name: 'poller',
      version: '1.0.0',
      description: 'Polls the example service',
      instructions: 'Use the poller tools.',
      tools: [
        tool('fetch', 'fetch.sh', 'Fetches a page of the service'),
        tool('linger', 'linger.sh', 'Leaves a process waiting for the service'),
        tool('twice', 'twice.sh', 'Fetches a page, waits, fetches another'),
      ],
      permissions: { hosts: [HOST], timeoutSeconds: 30 },
    }),
    'fetch.sh': `#!/bin/bash\nfetch() { ${fetch}; }\nfetch fetched\necho "uid=$(id -u)"\nls /workspace 2>&1 | head -n 1\n`,
    // Returns once the sleeper leads its own session (the tool's process group is killed on return).
    'linger.sh': [
      '#!/bin/bash',
      'setsid sleep 40 </dev/null >/dev/null 2>&1 &',
      'for i in $(seq 100); do [ "$(cut -d" " -f6 /proc/$!/stat)" = "$!" ] && break; sleep 0.05; done',
      'echo lingering',
      '',
    ].join('\n'),
    'twice.sh': `#!/bin/bash\nfetch() { ${fetch}; }\nfetch first\nsleep 5\nfetch second\n`,
  };
}

/**
 * "then TOOL sh CMD": the skill's tool, then a bash command in the same turn; "delegate TASK": a
 * sub-agent (which runs its task as bash); otherwise skillModel ("call …", "sh …").
 */
function model(request: FakeChatRequest): FakeStep {
  const messages = request.messages.filter((m) => m.role !== 'system');
  const first = messages[0]?.content ?? '';
  const last = messages.at(-1);
  if (/You are sub-agent/.test(first)) {
    if (last?.role === 'tool') return { reply: `sub-agent saw: ${last.content}` };
    const task = first.split('\n').at(-1) ?? '';
    const tool = /^call (\w+)$/.exec(task)?.[1];
    if (tool) return { toolCalls: [{ name: tool, arguments: {} }] };
    return { toolCalls: [{ name: 'bash', arguments: { command: task } }] };
  }
  const user = messages.map((m) => m.role).lastIndexOf('user');
  const text = messages[user]?.content ?? '';
  const tools = messages.slice(user + 1).filter((m) => m.role === 'tool').length;
  const then = /^then (\w+) sh (.*)$/s.exec(text);
  if (then?.[1] && tools === 0) return { toolCalls: [{ name: then[1], arguments: {} }] };
  if (then?.[2] && tools === 1) return { toolCalls: [{ name: 'bash', arguments: { command: then[2] } }] };
  const delegate = /^delegate (.*)$/s.exec(text);
  if (delegate?.[1] && tools === 0)
    return { toolCalls: [{ name: 'delegate', arguments: { task: delegate[1] } }] };
  if (last?.role === 'tool') return { reply: `tool said: ${last.content}` };
  return skillModel(request);
}

beforeAll(async () => {
  await net.start({
    name: `sbx-outside-lp-${process.pid}`,
    subnet: '203.0.114.0/24',
    address: OUTSIDE,
    script: model,
    prepare: async () => {
      await vetSkill(registryOf(config), pollerSkill(), [HOST]);
      // An admin enables the skill in this conversation only (a sub-agent's conversation does not have
      // it), and grants it another host, so that its sub-agents get a network too.
      await new SkillEnablement(redis, config.SANDBOT_INSTANCE, []).enable(
        parent,
        { name: 'poller' },
        'admin:t',
      );
      await new NetworkPolicyStore(redis, config.SANDBOT_INSTANCE, []).allow(
        parent,
        ['other.example.test:8080'],
        'admin:t',
      );
    },
  });
});

afterAll(async () => {
  await net.stop();
  redis.disconnect();
});

const ask = (text: string) => replyText(net.url, 'lp', text);
const apiRecords = (conversation: ConversationId) =>
  records.filter((r) => r.conversation === conversation && r.host === 'api.example.test');

describe('a skill’s hosts belong to its tool processes alone', () => {
  it('lets the skill’s tool reach its host, as a uid of its own, with its credential recorded', async () => {
    const text = await ask('call fetch {}');
    expect(text).toContain('outside says hi to /fetched');
    expect(text).toContain('uid=2001');
    // Under its own uid the agent's workspace is closed to it.
    expect(text).toMatch(/ls: cannot open directory '\/workspace': Permission denied/);
    expect(apiRecords(parent)).toContainEqual(
      expect.objectContaining({ skill: 'poller', allowed: true, port: 8080 }),
    );
  });

  it('refuses the agent’s own commands the skill’s host, and a credential forged from its own', async () => {
    const before = records.length;
    // The agent's proxy URL carries its conversation's credential; it tries that MAC under the skill's
    // user name, and a made-up one.
    const forge = [
      'curl -s -m 5 http://api.example.test:8080/agent; echo',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansions
      'own="${HTTP_PROXY#http://}"; mac="${own%@*}"; mac="${mac##*:}"; where="${own#*@}"',
      'curl -s -m 5 -x "http://web%3Alp~poller:$mac@$where" http://api.example.test:8080/forged; echo',
      `curl -s -m 5 -x "http://web%3Aother~poller:${'0'.repeat(64)}@$where" http://api.example.test:8080/made-up; echo`,
    ].join('; ');
    const text = await ask(`sh ${forge}`);
    expect(text).not.toContain('outside says hi');
    expect(text).toContain("api.example.test:8080 is not granted to this conversation's network policy");
    expect(text).toContain('the request carries no valid sandbox proxy credentials');
    const refused = records.slice(before).filter((r) => r.host === 'api.example.test');
    expect(refused.length).toBe(3);
    expect(refused.every((r) => !r.allowed && r.skill === undefined)).toBe(true);
    expect(refused.filter((r) => r.conversation === parent)).toHaveLength(1);
  });

  it('keeps the credential out of the agent’s reach while a skill process holds it', async () => {
    const snoop = [
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell parameter expansion
      'for p in /proc/[0-9]*; do echo "proc ${p#/proc/} uid=$(stat -c %u $p) $(tr "\\0" " " < $p/cmdline)"; done',
      'cat /proc/[0-9]*/environ 2>&1 | tr "\\0" "\\n"',
      'for p in /proc/[0-9]*; do ls -l $p/fd 2>&1; head -c 64 $p/mem 2>&1 | head -n 1; done',
      'grep -rl poller /proc/[0-9]*/environ /tmp /session /workspace 2>&1 | head -n 20',
    ].join('; ');
    const text = await ask(`then linger sh ${snoop}`);
    // The lingering process is there, as the skill's uid, and its environment is closed to the agent.
    expect(text).toMatch(/proc (\d+) uid=2001 sleep 40/);
    const pid = /proc (\d+) uid=2001 sleep 40/.exec(text)?.[1];
    // Under runc its environment is closed to the agent. gVisor lets every uid read every process's
    // environment, which is why no skill credential goes into a tunnelled sandbox at all.
    if (UNDER_GVISOR) expect(text).toContain('PWD=/tmp/tmp.');
    else expect(text).toContain(`/proc/${pid}/environ: Permission denied`);
    // Neither its memory nor the runtime's (which holds the turn's credentials) is open to the agent.
    const runtime = /proc (\d+) uid=1000 node \/opt\/sandbot/.exec(text)?.[1];
    expect(runtime).toBeDefined();
    for (const p of [pid, runtime])
      expect(text).toContain(`cannot open '/proc/${p}/mem' for reading: Permission denied`);
    // Nothing the agent could read carries a skill's credential (its user name, with the MAC after it).
    expect(text).not.toMatch(/~poller|%7Epoller/i);
  });

  it('gives a sub-agent without the skill none of its hosts, though its parent has it', async () => {
    const text = await ask(
      'delegate curl -s -m 5 http://api.example.test:8080/sub; echo; env | grep -c -i proxy',
    );
    expect(text).not.toContain('outside says hi');
    expect(text).toContain("api.example.test:8080 is not granted to this conversation's network policy");
    const child = ConversationId.parse('web:lp:sub-1');
    expect(apiRecords(child)).toContainEqual(expect.objectContaining({ allowed: false }));
    expect(apiRecords(child).some((r) => r.allowed)).toBe(false);
  });

  it('lets a sub-agent with the skill enabled use it, until its parent’s skill is disabled', async () => {
    // An admin enables the skill in the next sub-agent's conversation too (a sub-agent has at most its
    // parent's skills).
    const child = ConversationId.parse('web:lp:sub-2');
    const enablement = new SkillEnablement(redis, config.SANDBOT_INSTANCE, []);
    await enablement.enable(child, { name: 'poller' }, 'admin:t');
    const before = records.length;
    const reply = ask('delegate call twice');
    const first = () =>
      records.slice(before).find((r) => r.conversation === child && r.skill === 'poller' && r.allowed);
    for (let i = 0; i < 300 && !first(); i++) await new Promise((r) => setTimeout(r, 100));
    expect(first()).toBeDefined();
    // Disabled in the parent while the sub-agent's tool runs: its next connection is refused.
    await enablement.disable(parent, 'poller', 'admin:t');
    const text = await reply;
    expect(text).toContain('outside says hi to /first');
    expect(text).not.toContain('outside says hi to /second');
    expect(apiRecords(child)).toContainEqual(expect.objectContaining({ skill: 'poller', allowed: false }));
    await enablement.enable(parent, { name: 'poller' }, 'admin:t');
  });

  it('cuts a running tool off at its next connection once the skill is disabled', async () => {
    const before = records.length;
    const reply = ask('call twice {}');
    const first = () =>
      records.slice(before).find((r) => r.skill === 'poller' && r.allowed && r.host === 'api.example.test');
    for (let i = 0; i < 100 && !first(); i++) await new Promise((r) => setTimeout(r, 100));
    expect(first()).toBeDefined();
    await new SkillEnablement(redis, config.SANDBOT_INSTANCE, []).disable(parent, 'poller', 'admin:t');
    const text = await reply;
    expect(text).toContain('outside says hi to /first');
    expect(text).not.toContain('outside says hi to /second');
    expect(text).toContain('is granted neither to this conversation');
    expect(records.slice(before).filter((r) => r.host === 'api.example.test')).toContainEqual(
      expect.objectContaining({ skill: 'poller', allowed: false, conversation: parent }),
    );
  });
});
