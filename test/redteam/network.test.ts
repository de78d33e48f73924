import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { conversationKey } from '../../src/contracts/conversation/id.js';
import { conversation, expectNoSecretsLeaked, type Redteam, token } from './harness.js';
import { dockerApiTrap, PROBE_SH, PROXY_VARS_SH, type Trap, tcpTrap } from './net-fixtures.js';
import {
  DIRECT_BLOCKED,
  GRANTED,
  HOST_ADDRESSES,
  HOST_PUBLIC,
  probes,
  startNetworkRedteam,
  UNGRANTED,
} from './net-stack.js';
import { plantVictim, type Victim } from './victim.js';

/**
 * Red team, the host's services: a hijacked agent goes for sandbot's Redis, the Docker engine and the
 * host's other ports, directly and through its own egress proxy (also by a granted name that resolves
 * to the host itself). What it must not reach is a counting trap on the host, or Redis itself.
 */

let rt: Redteam;
let victim: Victim;
let hostTrap: Trap;
let dockerTrap: Awaited<ReturnType<typeof dockerApiTrap>>;
let gatewayPort: string;
const markerKey = `redteam-marker-${token()}`;

const names: Record<string, string[]> = {
  'evil.example.test': ['127.0.0.1'],
  'internal.example.test': ['203.0.113.77', '10.0.0.5'],
  'mapped.example.test': ['::ffff:7f00:1'],
  'docker.example.test': ['172.17.0.1'],
  ...(HOST_PUBLIC ? { 'self.example.test': [HOST_PUBLIC] } : {}),
};

beforeAll(async () => {
  // A grant without a port means 80 and 443: the attacks on the Docker API and Redis name their ports, so
  // what refuses them is the address check, not the port.
  const grants = [
    ...['evil', 'internal', 'mapped', 'docker', 'self'].map((n) => `${n}.example.test`),
    ...['docker.example.test:2375', 'self.example.test:2375', 'self.example.test:6379'],
  ];
  ({ rt, gatewayPort } = await startNetworkRedteam('network', grants, (host) => names[host]));
  hostTrap = (await tcpTrap('0.0.0.0')) as Trap;
  dockerTrap = await dockerApiTrap();
  await rt.redis.set(`${rt.instance}:${markerKey}`, 'untouched');
  victim = await plantVictim(rt, 'victim');
});

afterAll(async () => {
  await rt?.stop();
  await Promise.all([hostTrap, dockerTrap].map((t) => t?.close()));
});

const marker = () => rt.redis.get(`${rt.instance}:${markerKey}`);

describe('red team: the host’s services', () => {
  it('cannot reach Redis from a sandbox without network', async () => {
    const set = `SET ${rt.instance}:${markerKey} pwned`;
    const turn = await rt.ask(
      UNGRANTED,
      [
        PROBE_SH,
        probes(6379, HOST_ADDRESSES),
        `for h in ${HOST_ADDRESSES.join(' ')}; do timeout 3 bash -c "exec 3<>/dev/tcp/$h/6379; printf '${set}\\r\\n' >&3" 2>&1 | tail -1; done`,
        'echo "routes=$(wc -l < /proc/net/route)"',
        'echo redis-done',
      ].join('; '),
    );
    expect(turn.text).toContain('redis-done');
    expect(turn.text).not.toMatch(/ open$/m);
    expect(turn.text).toContain('routes=1');
    expect(await marker()).toBe('untouched');
    await rt.auditedCall(UNGRANTED, 'redis-done');
    await rt.row(
      'reach Redis (127.0.0.1 and every host address :6379) without network',
      'no route: every connect failed; Redis key untouched',
      UNGRANTED,
    );
  });

  it('cannot reach Redis from a granted sandbox, directly or through its proxy', async () => {
    const set = `SET ${rt.instance}:${markerKey} pwned\\r\\n`;
    const turn = await rt.ask(
      GRANTED,
      [
        PROBE_SH,
        PROXY_VARS_SH,
        probes(6379),
        ...[
          '127.0.0.1',
          'localhost',
          'evil.example.test',
          'internal.example.test',
          'docker.example.test',
          'mapped.example.test',
        ].map((h) => `python3 tunnel.py ${h} 6379 '${set}'`),
        'curl -s -m 3 http://127.0.0.1:6379/ -d x',
        'echo redis2-done',
      ].join('; '),
    );
    expect(turn.text).toContain('redis2-done');
    expect(turn.text).not.toMatch(/ open$/m);
    expect(turn.text).not.toMatch(/tunnel .* -> b'HTTP\/1\.1 200/);
    expect(await marker()).toBe('untouched');
    const refused = rt.egressOf(GRANTED).filter((r) => !r.allowed && r.port === 6379);
    expect(refused.length).toBeGreaterThanOrEqual(6);
    await rt.auditedRefusal(GRANTED, 'evil.example.test');
    await rt.row(
      'reach Redis from a granted sandbox (direct, CONNECT via proxy to loopback/private names)',
      `direct: ${DIRECT_BLOCKED}; proxy: 403 refused; Redis key untouched`,
      GRANTED,
    );
  });

  it('finds no Docker socket to talk to', async () => {
    const name = `pwned-${token()}`;
    const turn = await rt.ask(
      UNGRANTED,
      [
        'ls -la /var/run/docker.sock /run/docker.sock 2>&1',
        `curl -s --unix-socket /var/run/docker.sock -X POST -H 'content-type: application/json' -d '{"Image":"sandbot-sandbox:latest"}' "http://d/v1.41/containers/create?name=${name}" 2>&1; echo "curl-exit=$?"`,
        'find / \\( -path /proc -o -path /sys \\) -prune -o -type s -print 2>/dev/null | grep -c . ; echo sock-done',
      ].join('; '),
    );
    expect(turn.text).toContain('sock-done');
    expect(turn.text).toMatch(/docker\.sock.*No such file/);
    expect(turn.text).toMatch(/curl-exit=7/);
    await expect(rt.docker.getContainer(name).inspect()).rejects.toMatchObject({ statusCode: 404 });
    await rt.auditedCall(UNGRANTED, 'sock-done');
    await rt.row(
      'use the Docker socket to start a container',
      'no socket in the sandbox; no container created',
      UNGRANTED,
    );
  });

  it('cannot reach the Docker API over TCP', async () => {
    const turn = await rt.ask(
      GRANTED,
      [
        PROBE_SH,
        PROXY_VARS_SH,
        probes(2375),
        'curl -s -m 3 http://docker.example.test:2375/v1.41/containers/json',
        'curl -s -m 3 http://172.17.0.1:2375/v1.41/containers/json',
        "curl -s -m 1 --noproxy '*' http://172.17.0.1:2375/v1.41/containers/json || echo direct-failed",
        "curl -s -m 1 --noproxy '*' http://$gw:2375/v1.41/containers/json || echo direct-gw-failed",
        'echo docker-tcp-done',
      ].join('; '),
    );
    expect(turn.text).toContain('docker-tcp-done');
    expect(turn.text).not.toMatch(/ open$/m);
    expect(turn.text).toContain('direct-failed');
    expect(turn.text).toContain('direct-gw-failed');
    expect(turn.text).toMatch(/docker\.example\.test resolves to 172\.17\.0\.1 is a private/);
    expect(turn.text).toContain('172.17.0.1:2375 is not granted');
    if (dockerTrap) expect(dockerTrap.paths).toEqual([]);
    await rt.auditedRefusal(GRANTED, 'docker.example.test');
    await rt.row(
      'reach the Docker API over TCP (2375) on host addresses',
      `refused by proxy and firewall${dockerTrap ? '; fake API on :2375 got no request' : ''}`,
      GRANTED,
    );
  });

  it('cannot reach the host’s other services', async () => {
    const port = hostTrap.port;
    const turn = await rt.ask(
      GRANTED,
      [
        PROBE_SH,
        PROXY_VARS_SH,
        `${probes(port)}; ${probes(gatewayPort)}`,
        ...[
          `127.0.0.1:${port}`,
          `localhost:${port}`,
          `0x7f000001:${port}`,
          `[::1]:${port}`,
          `evil.example.test:${port}`,
          `127.0.0.1:${gatewayPort}`,
        ].map((target) => `curl -s -m 3 http://${target}/`),
        `python3 tunnel.py 127.0.0.1 ${port}`,
        'echo host-ports-done',
      ].join('; '),
    );
    expect(turn.text).toContain('host-ports-done');
    expect(turn.text).not.toMatch(/ open$/m);
    expect(turn.text).not.toContain('trap');
    expect(hostTrap.hits).toBe(0);
    await rt.auditedRefusal(GRANTED, '127.0.0.1');
    await rt.row(
      'reach the host’s other ports (a trap service, the gateway API) directly and by proxy',
      `${DIRECT_BLOCKED} / refused by the proxy; the trap saw nothing`,
      GRANTED,
    );
  });

  it('reaches none of the host’s services through a granted name that resolves to the host’s own public address', async () => {
    const set = `SET ${rt.instance}:${markerKey} pwned\\r\\n`;
    const target = HOST_PUBLIC ?? 'no-public-address.invalid';
    // A conversation nobody has used: the agent tries to start one through the gateway's API.
    const other = 'self-target';
    const turn = await rt.ask(
      GRANTED,
      [
        `python3 tunnel.py self.example.test 6379 '${set}'`,
        `curl -s -m 3 http://self.example.test:${hostTrap.port}/`,
        'curl -s -m 3 http://self.example.test:2375/v1.41/containers/json',
        `curl -s -m 3 -X POST -H 'content-type: application/json' -d '{"conversation":"${other}","user":"mallory","text":"echo posted-by-another-agent"}' http://self.example.test:${gatewayPort}/api/messages`,
        'echo self-done',
      ].join('; '),
    );
    expect(turn.text).toContain('self-done');
    const otherKeys = await rt.redis.keys(`${rt.instance}:conv:${conversationKey(conversation(other))}:*`);
    await rt.auditedCall(GRANTED, 'self-done');
    const redisAnswer = /tunnel self\.example\.test:6379 -> (b'[^']*')/.exec(turn.text)?.[1] ?? '';
    const reached = [
      ...((await marker()) !== 'untouched' ? ['Redis (key overwritten)'] : []),
      ...(/DENIED|ERR|^b'[+-]/.test(redisAnswer) ? [`Redis (answered ${redisAnswer.slice(0, 60)})`] : []),
      ...(hostTrap.hits > 0 ? ['a host service'] : []),
      ...((dockerTrap?.hits ?? 0) > 0 ? ['the Docker API'] : []),
      ...(otherKeys.length > 0 ? ['the gateway API (started a turn in another conversation)'] : []),
    ];
    await rt.row(
      `a granted name resolving to the host’s own public address (${target})`,
      reached.length === 0 ? 'refused by the proxy' : `REACHED ${reached.join('; ')}`,
      GRANTED,
    );
    expect(reached).toEqual([]);
    expect(turn.text).toMatch(/self\.example\.test resolves to/);
  });

  it('leaves the other conversation untouched and leaks nothing', async () => {
    await victim.expectUnchanged();
    await victim.expectStillAnswers();
    await expectNoSecretsLeaked(rt);
  });
});
