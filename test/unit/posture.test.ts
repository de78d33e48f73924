import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/contracts/config/load.js';
import {
  engineDnsExfiltration,
  type Finding,
  hasHigh,
  type PostureFacts,
  postureFindings,
} from '../../src/shared/posture/posture.js';
import { isOpenReply } from '../../src/shared/posture/redis-posture.js';
import { usesUserNamespaces } from '../../src/worker/posture-probe.js';

// The posture report's judging, one weakened setting at a time: each is named with its severity and fix.

/** A host as strong as it gets: the micro-VM in force, a patched engine with user namespaces, Redis closed. */
const STRONG: PostureFacts = {
  layer: { inForce: 'microvm', strongest: 'microvm', egress: 'tunnel' },
  engine: { version: '27.3.1', userns: true },
  redis: { open: false, bind: ['127.0.0.1', '-::1'] },
};
const SAFE = { SANDBOT_API_TOKEN: 'x'.repeat(32) };

function judge(env: Record<string, string>, facts: PostureFacts = STRONG): Finding[] {
  return postureFindings(parseConfig({ ...SAFE, ...env }), facts);
}
const summary = (findings: Finding[]) => findings.map((f) => [f.severity, f.setting]);

describe('postureFindings', () => {
  it('finds nothing on defaults with a token on a strong host', () => {
    expect(judge({})).toEqual([]);
    expect(hasHigh(judge({}))).toBe(false);
  });

  it('names a layer weaker than the strongest the host runs, high for plain containers', () => {
    const facts = { ...STRONG, layer: { inForce: 'container' as const, strongest: 'gvisor' as const } };
    const [finding] = judge({ SANDBOX_LAYER: 'container' }, facts);
    expect(finding).toMatchObject({ severity: 'high', setting: 'SANDBOX_LAYER=container' });
    expect(finding?.fix).toMatch(/SANDBOX_LAYER=auto/);
    const gvisor = { ...STRONG, layer: { inForce: 'gvisor' as const, strongest: 'microvm' as const } };
    expect(summary(judge({ SANDBOX_LAYER: 'gvisor' }, gvisor))).toEqual([['low', 'SANDBOX_LAYER=gvisor']]);
  });

  it('names plain containers as medium where nothing stronger runs, and a named container layer without facts', () => {
    const facts = { ...STRONG, layer: { inForce: 'container' as const, strongest: 'container' as const } };
    expect(summary(judge({}, facts))).toEqual([['medium', 'SANDBOX_LAYER=auto']]);
    expect(summary(judge({ SANDBOX_LAYER: 'container' }, {}))).toEqual([
      ['medium', 'SANDBOX_LAYER=container'],
    ]);
  });

  it('names uncapped disks', () => {
    expect(summary(judge({ SANDBOX_WORKSPACE_MB: '0' }))).toEqual([['medium', 'SANDBOX_WORKSPACE_MB=0']]);
  });

  it('names empty chat allowlists: who can use the bot', () => {
    const slack = judge({ SLACK_BOT_TOKEN: 'xoxb-1', SLACK_APP_TOKEN: 'xapp-1', SLACK_ALLOW_ALL: 'true' });
    expect(slack[0]).toMatchObject({ severity: 'medium', what: expect.stringMatching(/anyone/) });
    expect(judge({ SLACK_BOT_TOKEN: 'xoxb-1', SLACK_ALLOWED_USERS: 'U1' })).toEqual([]);
    const discord = judge({ DISCORD_TOKEN: 't', DISCORD_APPLICATION_ID: '1', DISCORD_ALLOW_ALL: 'true' });
    expect(discord[0]).toMatchObject({ severity: 'high', setting: expect.stringMatching(/DISCORD_ALLOWED/) });
    expect(judge({ DISCORD_TOKEN: 't', DISCORD_ALLOWED_GUILDS: 'G1' })).toEqual([]);
  });

  it('counts empty allowlists as open only with *_ALLOW_ALL=true (without it the gateway refuses to start)', () => {
    const open = parseConfig({ ...SAFE, SLACK_BOT_TOKEN: 'xoxb-1', SLACK_ALLOW_ALL: 'true' });
    expect(summary(postureFindings(open, STRONG))[0]?.[1]).toMatch(/SLACK_ALLOWED/);
    const listed = parseConfig({
      ...SAFE,
      SLACK_BOT_TOKEN: 'xoxb-1',
      SLACK_ALLOW_ALL: 'true',
      SLACK_ALLOWED_USERS: 'U1',
    });
    expect(postureFindings(listed, STRONG)).toEqual([]);
    const refused = parseConfig({ ...SAFE, SLACK_BOT_TOKEN: 'xoxb-1' });
    expect(postureFindings(refused, STRONG)).toEqual([]);
  });

  it('names the web API without a token: medium on loopback, high beyond it; a token in clear beyond it, low', () => {
    const none = { SANDBOT_API_TOKEN: '' };
    expect(summary(judge(none))).toEqual([['medium', 'SANDBOT_API_TOKEN']]);
    expect(summary(judge({ ...none, SANDBOT_HTTP_HOST: '0.0.0.0' }))).toEqual([
      ['high', 'SANDBOT_API_TOKEN'],
    ]);
    expect(summary(judge({ SANDBOT_HTTP_HOST: '0.0.0.0' }))).toEqual([['low', 'SANDBOT_HTTP_HOST=0.0.0.0']]);
    // No web chat served (a chat platform, auto): no API to open.
    expect(judge({ ...none, SLACK_BOT_TOKEN: 'xoxb-1', SLACK_ALLOWED_USERS: 'U1' })).toEqual([]);
  });

  it('names Redis that answers without a password, and Redis beyond loopback', () => {
    const open = judge({}, { ...STRONG, redis: { open: true } });
    expect(open).toEqual([expect.objectContaining({ severity: 'high', setting: 'SANDBOT_REDIS_URL' })]);
    expect(open[0]?.fix).toMatch(/setup\.sh/);
    const wide = judge({}, { ...STRONG, redis: { open: false, bind: ['*', '-::*'] } });
    expect(summary(wide)).toEqual([['medium', 'Redis bind']]);
    expect(wide[0]?.what).toMatch(/\* -::\*/);
    const remote = judge({ SANDBOT_REDIS_URL: 'redis://:pw@10.0.0.5:6379' });
    expect(summary(remote)).toEqual([['medium', 'SANDBOT_REDIS_URL']]);
    expect(judge({ SANDBOT_REDIS_URL: 'rediss://:pw@10.0.0.5:6379' })).toEqual([]);
    expect(summary(judge({}, { ...STRONG, redis: { open: true, bind: ['0.0.0.0'] } }))).toEqual([
      ['high', 'SANDBOT_REDIS_URL'],
      ['high', 'Redis bind'],
    ]);
  });

  it('names an engine over plain tcp://, high beyond loopback', () => {
    expect(summary(judge({ DOCKER_HOST: 'tcp://10.0.0.2:2375' }))).toEqual([
      ['high', 'DOCKER_HOST=tcp://10.0.0.2:2375'],
    ]);
    expect(summary(judge({ DOCKER_HOST: 'tcp://127.0.0.1:2375' }))).toEqual([
      ['medium', 'DOCKER_HOST=tcp://127.0.0.1:2375'],
    ]);
    expect(judge({ DOCKER_HOST: 'unix:///run/docker.sock' })).toEqual([]);
  });

  it('names an engine without user namespaces, medium under plain containers', () => {
    const engine = { version: '27.0.0', userns: false };
    expect(summary(judge({}, { ...STRONG, engine }))).toEqual([['low', 'engine user namespaces']]);
    const container = {
      ...STRONG,
      engine,
      layer: { inForce: 'container' as const, strongest: 'container' as const },
    };
    expect(summary(judge({}, container))).toContainEqual(['medium', 'engine user namespaces']);
  });

  it('names an engine below the CVE-2024-29018 fix: high where sandboxes join the internal network', () => {
    const old = { version: '20.10.24+dfsg1', userns: true };
    const bridged = {
      ...STRONG,
      engine: old,
      layer: { inForce: 'gvisor' as const, egress: 'bridge' as const },
    };
    expect(summary(judge({}, bridged))).toEqual([['high', 'engine 20.10.24+dfsg1']]);
    expect(summary(judge({}, { ...STRONG, engine: old }))).toEqual([['low', 'engine 20.10.24+dfsg1']]);
    expect(
      ['23.0.10', '23.0.11', '24.0.9', '25.0.4', '25.0.5', '26.0.0', '28.1.1'].map(engineDnsExfiltration),
    ).toEqual([true, false, true, true, false, false, false]);
  });

  it('names grants wider than one host', () => {
    const found = judge({ SANDBOT_NETWORK_RULES: 'web:=api.github.com,*.example.com' });
    expect(summary(found)).toEqual([['medium', 'SANDBOT_NETWORK_RULES']]);
    expect(found[0]?.what).toMatch(/\*\.example\.com/);
  });

  it('puts the most severe first', () => {
    const found = judge({ SANDBOX_WORKSPACE_MB: '0', SANDBOT_API_TOKEN: '', SANDBOT_HTTP_HOST: '0.0.0.0' });
    expect(found.map((f) => f.severity)).toEqual(['high', 'medium']);
  });
});

describe('posture probes, pure parts', () => {
  it('reads an unauthenticated PONG as an open Redis, NOAUTH or DENIED as closed', () => {
    expect(isOpenReply('+PONG')).toBe(true);
    expect(isOpenReply('-NOAUTH Authentication required.')).toBe(false);
    expect(isOpenReply('-DENIED Redis is running in protected mode')).toBe(false);
  });

  it('counts userns-remap and rootless engines as mapping root away', () => {
    expect(usesUserNamespaces(['name=seccomp,profile=default'])).toBe(false);
    expect(usesUserNamespaces(['name=seccomp,profile=default', 'name=userns'])).toBe(true);
    expect(usesUserNamespaces(['name=rootless'])).toBe(true);
  });
});
