import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/contracts/config/load.js';
import { conversationKeys } from '../../src/contracts/redis/keys.js';
import { parseNetworkCommand } from '../../src/gateway/commands/network-command.js';
import { parseManifest } from '../../src/worker/skills/manifest.js';
import { weatherSkill } from '../helpers/skill-fixtures.js';
import { UNDER_GVISOR } from '../helpers/stack.js';
import { conversation, expectNoSecretsLeaked, type Redteam, token } from './harness.js';
import { FLOOD_PY, HELLO_PY, outsideNetwork } from './net-fixtures.js';
import { GRANTED, startNetworkRedteam } from './net-stack.js';

/**
 * Red team, egress is exactly what was granted: domain fronting behind a granted name (another SNI, or
 * none), a granted host on ports the grant does not name, grants as wide as `*.com` from every entry
 * point, IPv6 ranges that lead back inside, IPv6 on the sandbox network, and a sandbox flooding the
 * proxy with connections and fresh names. The "outside" is a container on 192.88.99.0/24 (the retired 6to4 relay range: documentation ranges are taken here by the host and the other attack files) answering on
 * 443, 25 and 22 with what reached it.
 */

const OUTSIDE = '192.88.99.10';
const FRESH_DELAY_MS = 1500;

let rt: Redteam;
let outside: { remove(): Promise<unknown> };
let pending = 0;
let mostPending = 0;

const names: Record<string, string[]> = {
  'api.example.test': [OUTSIDE],
  'other.example.test': [OUTSIDE],
  'nat64.example.test': ['64:ff9b:1::a00:1'],
  'compat.example.test': ['::a00:5'],
  'sitelocal.example.test': ['fec0::1'],
};

/** Fresh names under the wildcard grant take a while to resolve: counts how many wait at once. */
async function resolve(host: string): Promise<string[] | undefined> {
  if (!host.endsWith('.fresh.example.test')) return names[host];
  pending += 1;
  mostPending = Math.max(mostPending, pending);
  await new Promise((done) => setTimeout(done, FRESH_DELAY_MS));
  pending -= 1;
  return [OUTSIDE];
}

const SERVER = `for (const port of [443, 25, 22]) require('net').createServer((s) => s.once('data', (d) =>
  s.end('outside:' + port + ' got ' + d.length + ' bytes, first 0x' + d[0].toString(16) + '\\n'))).listen(port);`;

beforeAll(async () => {
  ({ rt } = await startNetworkRedteam(
    'exact',
    [...Object.keys(names).filter((n) => n !== 'other.example.test'), '*.fresh.example.test'],
    resolve,
  ));
  const name = `sbx-rt-exact-${token()}`;
  const network = await outsideNetwork(rt.docker, name, '192.88.99.0/24', '192.88.99.1');
  outside = network;
  const web = await rt.docker.createContainer({
    Image: 'sandbot-sandbox:latest',
    name: `${name}-web`,
    Cmd: ['node', '-e', SERVER],
    // Root, to listen on 443, 25 and 22.
    User: '0:0',
    HostConfig: { NetworkMode: name, AutoRemove: true },
    NetworkingConfig: { EndpointsConfig: { [name]: { IPAMConfig: { IPv4Address: OUTSIDE } } } },
  });
  await web.start();
  outside = {
    remove: () =>
      web
        .remove({ force: true })
        .catch(() => undefined)
        .then(() => network.remove()),
  };
  const ready = await rt.ask(
    GRANTED,
    `@tools ${JSON.stringify([
      { name: 'write_file', arguments: { path: 'hello.py', content: HELLO_PY } },
      { name: 'write_file', arguments: { path: 'flood.py', content: FLOOD_PY } },
    ])}`,
  );
  expect(ready.kind).toBe('reply');
  await rt.checkpoint(GRANTED);
});

afterAll(async () => {
  await rt?.stop();
  await outside?.remove();
});

const refusals = (host: string) =>
  rt
    .egressOf(GRANTED)
    .filter((r) => r.host === host && !r.allowed)
    .map((r) => r.reason ?? '');

describe('red team: egress is exactly what was granted', () => {
  it('cannot front another site behind a granted name (other SNI, no SNI, plain text in the tunnel)', async () => {
    const turn = await rt.ask(
      GRANTED,
      [
        'python3 hello.py api.example.test 443 api.example.test',
        'python3 hello.py api.example.test 443 other.example.test',
        'python3 hello.py api.example.test 443 -',
        "python3 tunnel.py api.example.test 443 'GET / HTTP/1.1\\r\\nHost: other.example.test\\r\\n\\r\\n'",
        'python3 hello.py other.example.test 443 other.example.test',
        'echo fronting-done',
      ].join('; '),
    );
    expect(turn.text).toContain('fronting-done');
    // The positive control: the right SNI reaches the outside, the ClientHello intact.
    expect(turn.text).toMatch(
      /sni=api\.example\.test -> .*200.* then b'outside:443 got \d+ bytes, first 0x16/,
    );
    expect(turn.text).not.toMatch(/sni=other\.example\.test.*outside:443/);
    expect(turn.text).not.toMatch(/sni=- .*outside:443/);
    expect(turn.text).toMatch(/sni=other\.example\.test -> b'HTTP\/1\.1 403/);
    expect(turn.text.match(/outside:443/g)).toHaveLength(1);
    const why = refusals('api.example.test');
    expect(why).toContainEqual(expect.stringMatching(/"other\.example\.test" is not the CONNECT host/));
    expect(why).toContainEqual(expect.stringMatching(/names no server \(SNI\)/));
    expect(why).toContainEqual(expect.stringMatching(/CONNECT carries TLS only/));
    await rt.auditedRefusal(GRANTED, 'api.example.test');
    await rt.row(
      'domain fronting: CONNECT a granted name with another SNI, with no SNI, with plain HTTP inside',
      'tunnel cut after reading the ClientHello, before anything went upstream; only the matching SNI got out',
      GRANTED,
    );
  });

  it('cannot reach a granted host on SMTP or SSH when the grant names no port', async () => {
    const turn = await rt.ask(
      GRANTED,
      [
        'python3 tunnel.py api.example.test 25 "EHLO x\\r\\n"',
        'python3 tunnel.py api.example.test 22 "SSH-2.0-x\\r\\n"',
        'python3 hello.py api.example.test 25 api.example.test',
        'curl -s -m 3 http://api.example.test:25/',
        'echo ports-done',
      ].join('; '),
    );
    expect(turn.text).toContain('ports-done');
    expect(turn.text).toContain('api.example.test:25 is not granted');
    expect(turn.text).toContain('api.example.test:22 is not granted');
    expect(turn.text).not.toMatch(/outside:(25|22)/);
    await rt.row(
      'a granted host (no port in the grant) on port 25 and 22',
      'refused by the proxy: a grant without a port means 80 and 443',
      GRANTED,
    );
  });

  it('cannot get a grant as wide as *.com from config, chat, a skill manifest or Redis', async () => {
    for (const broad of ['*.com', '*.co.uk', '*.github.io']) {
      expect(() => parseConfig({ SANDBOT_NETWORK_RULES: `web:=${broad}` }), broad).toThrow(/public suffix/);
      expect(parseNetworkCommand(['allow', `pypi.org,${broad}`]), broad).toMatchObject({
        action: 'invalid',
        message: expect.stringContaining('public suffix'),
      });
      const skill = parseManifest(new Map(Object.entries(weatherSkill([broad]))));
      expect(skill, broad).toMatchObject({ ok: false, error: expect.stringContaining('public suffix') });
    }
    // Written straight into the policy store: the override does not parse, so the conversation keeps
    // what config gives it (nothing for this one).
    const session = `wide-${token()}`;
    const key = conversationKeys(rt.instance, conversation(session)).network;
    await rt.redis.set(
      key,
      JSON.stringify({ grants: ['*.com'], by: 'mallory', at: new Date().toISOString() }),
    );
    expect(await rt.grants(session)).toEqual([]);
    const turn = await rt.ask(
      session,
      'env | grep -ci proxy; curl -s -m 3 http://example.com/ || echo no-network',
    );
    expect(turn.text).toContain('no-network');
    await rt.row(
      'a grant of *.com / *.co.uk / *.github.io via SANDBOT_NETWORK_RULES, `network allow`, a skill manifest, Redis',
      'refused by every parser (Public Suffix List); a stored one grants nothing: no network',
      session,
    );
  });

  it('cannot reach inside through NAT64 local-use, IPv4-compatible or site-local IPv6', async () => {
    const hosts = ['nat64', 'compat', 'sitelocal'].map((n) => `${n}.example.test`);
    const turn = await rt.ask(
      GRANTED,
      [
        ...hosts.map((h) => `curl -s -m 3 http://${h}/`),
        'curl -s -m 3 "http://[fec0::1]/"',
        'echo v6-done',
      ].join('; '),
    );
    expect(turn.text).toContain('v6-done');
    expect(turn.text).toMatch(/nat64\.example\.test resolves to 64:ff9b:1::a00:1 is a private/);
    expect(turn.text).toMatch(/compat\.example\.test resolves to ::a00:5 is a private/);
    expect(turn.text).toMatch(/sitelocal\.example\.test resolves to fec0::1 is a private/);
    await rt.auditedRefusal(GRANTED, 'nat64.example.test');
    await rt.row(
      'granted names resolving to 64:ff9b:1::/48, ::/96, fec0::/10',
      'refused by the proxy (every address checked)',
      GRANTED,
    );
  });

  it('has no IPv6 on the sandbox network', async () => {
    const turn = await rt.ask(
      GRANTED,
      [
        // IPv6 addresses on anything but loopback (gVisor's netstack keeps ::1 on lo).
        `echo "inet6=$(awk '$6 != "lo"' /proc/net/if_inet6 2>/dev/null | wc -l)"`,
        `python3 -c "import socket; s=socket.socket(socket.AF_INET6); s.settimeout(2); s.connect(('ff02::1%eth0', 80))" 2>&1 | tail -1`,
        'echo v6net-done',
      ].join('; '),
    );
    expect(turn.text).toContain('v6net-done');
    expect(turn.text).toContain('inet6=0');
    if (UNDER_GVISOR) {
      await rt.row(
        'IPv6 from the sandbox (link-local, to host and neighbours)',
        'no network device at all (tunnelled)',
        GRANTED,
      );
      return;
    }
    const network = await rt.docker.getNetwork(`${rt.instance}-egress`).inspect();
    expect(network.EnableIPv6).toBe(false);
    const bridge = network.Options?.['com.docker.network.bridge.name'] as string;
    const sysctl = `/proc/sys/net/ipv6/conf/${bridge}/disable_ipv6`;
    if (existsSync(sysctl)) expect(readFileSync(sysctl, 'utf8').trim()).toBe('1');
    const v6rules = execFileSync('ip6tables', ['-S']).toString();
    for (const rule of [
      `-A INPUT -i ${bridge} -j DROP`,
      `-A FORWARD -i ${bridge} -j DROP`,
      `-A FORWARD -o ${bridge} -j DROP`,
    ]) {
      expect(v6rules).toContain(rule);
    }
    await rt.row(
      'IPv6 from the sandbox (link-local, to host and neighbours)',
      'no IPv6 address in the sandbox; network EnableIPv6=false, IPv6 off on the bridge, ip6tables DROP in and through it',
      GRANTED,
    );
  });

  it('cannot flood the proxy with connections beyond its cap', async () => {
    const turn = await rt.ask(GRANTED, 'python3 flood.py api.example.test 443 48; echo flood-done', 90_000);
    expect(turn.text).toContain('flood-done');
    const counts = Object.fromEntries(
      [...turn.text.matchAll(/(established|refused|cut)=(\d+)/g)].map((m) => [m[1], Number(m[2])]),
    );
    expect(counts.established).toBeLessThanOrEqual(rt.config.SANDBOT_EGRESS_MAX_CONNECTIONS);
    expect(counts.established).toBeGreaterThan(0);
    expect((counts.refused ?? 0) + (counts.cut ?? 0)).toBeGreaterThanOrEqual(
      48 - rt.config.SANDBOT_EGRESS_MAX_CONNECTIONS,
    );
    await rt.row(
      `${48} CONNECT tunnels at once, held open`,
      `at most ${rt.config.SANDBOT_EGRESS_MAX_CONNECTIONS} established (${JSON.stringify(counts)}); the rest refused or cut`,
      GRANTED,
    );
  });

  it('cannot queue unbounded name lookups with fresh names under a wildcard grant', async () => {
    const turn = await rt.ask(
      GRANTED,
      'for i in $(seq 1 40); do curl -s -m 8 -o /dev/null -w "%{http_code}\\n" http://n$i-$RANDOM.fresh.example.test/ & done; wait; echo fresh-done',
      90_000,
    );
    expect(turn.text).toContain('fresh-done');
    expect(mostPending).toBeGreaterThan(0);
    expect(mostPending).toBeLessThanOrEqual(rt.config.SANDBOT_EGRESS_MAX_LOOKUPS);
    const pendingRefusals = rt
      .egressOf(GRANTED)
      .filter((r) => !r.allowed && /name lookups pending/.test(r.reason ?? ''));
    expect(pendingRefusals.length).toBeGreaterThan(0);
    await rt.row(
      '40 fresh names at once under a granted *.fresh.example.test (each lookup slow)',
      `at most ${mostPending} lookups pending (cap ${rt.config.SANDBOT_EGRESS_MAX_LOOKUPS}); ${pendingRefusals.length} refused`,
      GRANTED,
    );
  });

  it('leaks nothing', async () => {
    await expectNoSecretsLeaked(rt);
  });
});
