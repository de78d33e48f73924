import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDocker } from '../../sandbox/host/driver/docker-client.js';
import { webConversationId } from '../../src/contracts/conversation/id.js';
import { AuditJournal } from '../../src/shared/audit/journal.js';
import { parseEvents } from '../../src/shared/audit/summary.js';
import type { EgressRecord } from '../../src/worker/egress/proxy.js';
import { type FakeOllama, startFakeOllama } from '../../testkit/fakes/fake-ollama.js';
import { cleanInstance } from '../../testkit/instance.js';
import { type OutsideHost, startOutsideHost } from '../../testkit/outside-host.js';
import { testInstance } from '../../testkit/redis.js';
import { replyText, shellModel } from '../helpers/shell-model.js';
import { openSse, postMessage } from '../helpers/sse.js';
import { startStack, testConfig } from '../helpers/stack.js';

/**
 * Network policy on the real engine: a granted sandbox reaches its granted host only through the
 * egress proxy; everything else (other hosts, private addresses behind a granted name, the host's own
 * services, the outside without the proxy, forged proxy credentials) is refused and recorded.
 * The "outside" host is a container on a documentation-range network (198.51.100.10).
 */

const docker = createDocker(undefined);
const OUTSIDE = '198.51.100.10';
const config = testConfig(testInstance('egress'), {
  // A grant without a port means 80 and 443: the outside's ports are named.
  SANDBOT_NETWORK_RULES:
    'web:net*=api.example.test:8080,api.example.test:8443,evil.example.test:8080,meta.example.test',
  SANDBOT_EGRESS_PORT: '0',
  SANDBOT_EGRESS_MAX_BYTES: '65536',
  SANDBOT_EGRESS_MAX_SECONDS: '3',
});
const records: EgressRecord[] = [];
let outside: OutsideHost;
let outsidePort: number;
let ollama: FakeOllama;
let stack: Awaited<ReturnType<typeof startStack>>;

beforeAll(async () => {
  outside = await startOutsideHost(docker, {
    name: `sbx-outside-${process.pid}`,
    subnet: '198.51.100.0/24',
    address: OUTSIDE,
    tls: selfSignedCertificate('api.example.test'),
  });
  outsidePort = outside.port;
  ollama = await startFakeOllama({ models: ['qwen2.5:7b'], script: shellModel });
  Object.assign(config, { OLLAMA_HOST: ollama.url });
  const names: Record<string, string> = {
    'api.example.test': OUTSIDE,
    'evil.example.test': '127.0.0.1',
    'meta.example.test': '169.254.169.254',
  };
  stack = await startStack(config, {
    lookup: async (host) =>
      names[host] ? [{ address: names[host], family: 4 }] : Promise.reject(new Error('ENOTFOUND')),
    onEgress: (entry) => records.push(entry),
  });
});

afterAll(async () => {
  await stack?.stop();
  await ollama?.close();
  await outside?.stop();
  await cleanInstance(config);
});

const ask = (session: string, command: string) => replyText(stack.url, session, command);

/** A throwaway key and certificate for `host` (openssl, which setup installs). */
function selfSignedCertificate(host: string): { key: string; cert: string } {
  const dir = mkdtempSync(join(tmpdir(), 'sbx-tls-'));
  try {
    execFileSync(
      'openssl',
      [
        ...['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', `/CN=${host}`],
        ...[
          '-addext',
          `subjectAltName=DNS:${host}`,
          '-keyout',
          join(dir, 'key.pem'),
          '-out',
          join(dir, 'cert.pem'),
        ],
      ],
      { stdio: 'ignore' },
    );
    return {
      key: readFileSync(join(dir, 'key.pem'), 'utf8'),
      cert: readFileSync(join(dir, 'cert.pem'), 'utf8'),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('egress policy', () => {
  it('lets a granted sandbox reach its granted host through the proxy, plain and by CONNECT', async () => {
    // CONNECT carries TLS only (its SNI is checked against the granted name): HTTPS to a self-signed host.
    const text = await ask(
      'net',
      `curl -s http://api.example.test:${outsidePort}/plain; curl -sk https://api.example.test:${outside.tlsPort}/tunnel`,
    );
    expect(text).toContain('outside says hi to /plain');
    expect(text).toContain('outside says hi to /tunnel');
    expect(records).toContainEqual(
      expect.objectContaining({
        conversation: 'web:net',
        host: 'api.example.test',
        allowed: true,
        method: 'GET',
      }),
    );
    expect(records).toContainEqual(
      expect.objectContaining({
        conversation: 'web:net',
        host: 'api.example.test',
        allowed: true,
        method: 'CONNECT',
      }),
    );
  });

  it('refuses ungranted hosts and granted names that resolve to private or metadata addresses, saying why', async () => {
    const text = await ask(
      'net',
      [
        `curl -s http://other.example.test:${outsidePort}/`,
        `curl -s http://evil.example.test:${outsidePort}/`,
        'curl -s http://meta.example.test/latest/meta-data/',
        `curl -s http://${OUTSIDE}:${outsidePort}/by-ip`,
      ].join('; '),
    );
    expect(text).toContain(
      `other.example.test:${outsidePort} is not granted to this conversation's network policy`,
    );
    expect(text).toMatch(/evil\.example\.test resolves to 127\.0\.0\.1 is a private, loopback/);
    expect(text).toMatch(/meta\.example\.test resolves to 169\.254\.169\.254/);
    expect(text).toContain(`${OUTSIDE}:${outsidePort} is not granted`);
    expect(text).not.toContain('outside says hi');
    for (const host of ['other.example.test', 'evil.example.test', 'meta.example.test']) {
      expect(records).toContainEqual(
        expect.objectContaining({ conversation: 'web:net', host, allowed: false }),
      );
    }
  });

  it('has no way around the proxy: not direct, not to the host’s services, not with forged credentials', async () => {
    const text = await ask(
      'net',
      [
        `curl -s -m 3 --noproxy '*' http://${OUTSIDE}:${outsidePort}/direct || echo direct-failed`,
        `gw=$(echo "$HTTP_PROXY" | sed -E 's#.*@([0-9.]+):.*#\\1#'); timeout 3 bash -c "exec 3<>/dev/tcp/$gw/6379" 2>/dev/null && echo redis-open || echo redis-blocked`,
        `curl -s -x "http://web%3Aother:forged@$gw:\${HTTP_PROXY##*:}" http://api.example.test:${outsidePort}/forged`,
        'getent hosts example.com || echo dns-failed',
      ].join('; '),
    );
    expect(text).toContain('direct-failed');
    expect(text).toContain('redis-blocked');
    expect(text).toContain('no valid sandbox proxy credentials');
    expect(text).toContain('dns-failed');
    expect(text).not.toContain('outside says hi');
  });

  it('gives a conversation without grants no network at all', async () => {
    const text = await ask(
      'nonet',
      `env | grep -ic proxy; curl -s -m 3 http://${OUTSIDE}:${outsidePort}/ || echo no-network; cat /proc/net/route | wc -l`,
    );
    expect(text).toMatch(/^tool said: exit code \d+\n0\n/);
    expect(text).toContain('no-network');
    // Only the header line: no interface with a route (the loopback has none in /proc/net/route).
    expect(text.trim().endsWith('1')).toBe(true);
  });

  it('kills and quarantines a sandbox that keeps knocking on refused hosts', async () => {
    const sse = await openSse(`${stack.url}/api/conversations/net2/events`);
    try {
      await postMessage(
        stack.url,
        'net2',
        'for i in 1 2 3 4 5 6 7 8; do curl -s http://nope-$i.example.test/; done; sleep 5',
      );
      const killed = await sse.waitFor((e) => e.type === 'error');
      expect(killed.type === 'error' && killed.message).toContain(
        '5 refused network requests in one turn; by tripwire',
      );
      expect(
        records.filter((r) => r.conversation === 'web:net2' && !r.allowed).length,
      ).toBeGreaterThanOrEqual(5);
    } finally {
      sse.close();
    }
  });

  it('records a turn with a proxied request in the audit log, in order', async () => {
    const text = await ask('net-audit', `curl -s http://api.example.test:${outsidePort}/audited`);
    expect(text).toContain('outside says hi to /audited');
    const journal = new AuditJournal(config.SANDBOT_AUDIT_DIR, config.SANDBOT_INSTANCE);
    const conversation = webConversationId('net-audit');
    const kinds = new Set([
      'message.received',
      'turn.started',
      'model.request',
      'model.response',
      'net.request',
      'tool.call',
      'turn.finished',
    ]);
    const read = async () =>
      parseEvents((await journal.read(conversation)) ?? '').filter((e) => kinds.has(e.kind));
    await expect
      .poll(async () => (await read()).some((e) => e.kind === 'turn.finished'), { timeout: 20_000 })
      .toBe(true);
    const events = await read();
    expect(events.map((e) => e.kind)).toEqual([
      'message.received',
      'turn.started',
      'model.request',
      'model.response',
      'net.request',
      'tool.call',
      'model.request',
      'model.response',
      'turn.finished',
    ]);
    const net = events.find((e) => e.kind === 'net.request');
    expect(net).toMatchObject({
      actor: 'proxy',
      data: { host: 'api.example.test', port: outsidePort, allowed: true, method: 'GET' },
    });
  });

  it('cuts a proxied request at its byte and time caps', async () => {
    const text = await ask(
      'net-caps',
      [
        `curl -s http://api.example.test:${outsidePort}/big/300000 | wc -c; echo "big-exit \${PIPESTATUS[0]}"`,
        `start=$(date +%s); curl -s http://api.example.test:${outsidePort}/slow; echo " slow-exit $? after $(( $(date +%s) - start ))s"`,
      ].join('; '),
    );
    const size = Number(/(\d+)\nbig-exit/.exec(text)?.[1]);
    expect(size).toBeLessThan(300_000);
    expect(text).not.toContain('big-exit 0');
    const seconds = Number(/slow-exit \d+ after (\d+)s/.exec(text)?.[1]);
    expect(seconds).toBeLessThanOrEqual(6);
    expect(text).not.toMatch(/slow-exit 0 /);
  });
});
