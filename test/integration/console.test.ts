import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createChatAdapters } from '../../adapters/index.js';
import type { AuditEvent } from '../../src/contracts/audit/events.js';
import { type ConversationId, webConversationId } from '../../src/contracts/conversation/id.js';
import { createLogger } from '../../src/contracts/log/logger.js';
import { consoleKeys } from '../../src/contracts/redis/keys.js';
import { type RunningGateway, startGateway } from '../../src/gateway/start-gateway.js';
import { AuditJournal } from '../../src/shared/audit/journal.js';
import { parseEvents } from '../../src/shared/audit/summary.js';
import { ConversationStore } from '../../src/shared/queue/conversation-store.js';
import { createRedis } from '../../src/shared/redis/connection.js';
import { ApprovalStore } from '../../src/shared/stores/approval-store.js';
import { NetworkPolicyStore } from '../../src/shared/stores/policy-store.js';
import { Quarantine } from '../../src/shared/stores/quarantine.js';
import { writeSandboxReport } from '../../src/shared/stores/sandbox-report.js';
import { TaskStore } from '../../src/shared/stores/task-store.js';
import { dropInstanceKeys, testInstance } from '../../testkit/redis.js';
import { consoleRequest, signIn } from '../helpers/console-client.js';
import { testConfig } from '../helpers/stack.js';

/**
 * The console over plain HTTP against a real gateway and Redis: no console without a token, the
 * sign-in and its cookie, and every action refused without its CSRF token or with a foreign Origin.
 */

const TOKEN = 'console-test-token-0123456789';
const dir = mkdtempSync(path.join(tmpdir(), 'sandbot-console-'));
const instance = testInstance('console');
const config = testConfig(instance, { SANDBOT_API_TOKEN: TOKEN, SANDBOT_AUDIT_DIR: dir });
const conversation = webConversationId('console-http');
const convPath = `/console/conversations/${encodeURIComponent(conversation)}`;
let gateway: RunningGateway;
let redis: Redis;

beforeAll(async () => {
  gateway = await startGateway(config, createLogger(config), createChatAdapters);
  redis = createRedis(config.SANDBOT_REDIS_URL, 'console-test');
});

afterAll(async () => {
  await gateway?.stop();
  redis?.disconnect();
  await dropInstanceKeys(instance);
  rmSync(dir, { recursive: true, force: true });
});

async function auditEvents(conv: ConversationId, until: (events: AuditEvent[]) => boolean) {
  const journal = new AuditJournal(dir, instance);
  const deadline = Date.now() + 10_000;
  for (;;) {
    const events = parseEvents((await journal.read(conv)) ?? '');
    if (until(events) || Date.now() > deadline) return events;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('console without SANDBOT_API_TOKEN', () => {
  it('does not exist: every /console route is 404', async () => {
    const open = testConfig(`${instance}-open`, { SANDBOT_AUDIT_DIR: dir });
    const bare = await startGateway(open, createLogger(open), createChatAdapters);
    try {
      expect((await consoleRequest(`${bare.url}/console`)).status).toBe(404);
      const login = await consoleRequest(`${bare.url}/console/login`, {
        headers: { origin: bare.url },
        form: { token: 'x', name: 'x' },
      });
      expect(login.status).toBe(404);
    } finally {
      await bare.stop();
      await dropInstanceKeys(`${instance}-open`);
    }
  });
});

describe('console sign-in', () => {
  it('shows the sign-in form with a strict CSP and no framing', async () => {
    const page = await consoleRequest(`${gateway.url}/console`);
    expect(page.status).toBe(200);
    expect(page.body).toContain('name="token"');
    expect(String(page.headers['content-security-policy'])).toMatch(/script-src 'nonce-[^']+'/);
    expect(String(page.headers['content-security-policy'])).toContain("frame-ancestors 'none'");
    expect(page.headers['x-frame-options']).toBe('DENY');
  });

  it('refuses a wrong token with 401 and sets nothing', async () => {
    const login = await consoleRequest(`${gateway.url}/console/login`, {
      headers: { origin: gateway.url },
      form: { token: 'wrong', name: 'Mallory' },
    });
    expect(login.status).toBe(401);
    expect(login.headers['set-cookie']).toBeUndefined();
    expect(login.body).toContain('Wrong token');
  });

  it('refuses a sign-in form posted from another site', async () => {
    const login = await consoleRequest(`${gateway.url}/console/login`, {
      headers: { origin: 'https://evil.example' },
      form: { token: TOKEN, name: 'Ada' },
    });
    expect(login.status).toBe(403);
    expect(login.headers['set-cookie']).toBeUndefined();
  });

  it('sets an HttpOnly SameSite=Strict cookie that does not hold the token', async () => {
    const login = await consoleRequest(`${gateway.url}/console/login`, {
      headers: { origin: gateway.url },
      form: { token: TOKEN, name: 'Ada\nLovelace' },
    });
    expect(login.status).toBe(303);
    const cookie = String(login.headers['set-cookie']);
    expect(cookie).toMatch(/^sandbot_console=[A-Za-z0-9_-]{40,}; /);
    expect(cookie).toContain('HttpOnly');
    expect(cookie).toContain('SameSite=Strict');
    expect(cookie).toContain('Path=/console');
    expect(cookie).not.toContain(TOKEN);
    const page = await consoleRequest(`${gateway.url}/console`, {
      headers: { cookie: cookie.split(';')[0] ?? '' },
    });
    // The name's newline is gone: the audit actor stays one line.
    expect(page.body).toContain('Signed in as <b>Ada Lovelace</b>');
  });
});

describe('console actions', () => {
  let session: Awaited<ReturnType<typeof signIn>>;
  beforeAll(async () => {
    session = await signIn(gateway.url, TOKEN, 'Ada');
  });
  const post = (action: string, form: Record<string, string>, headers: Record<string, string> = {}) =>
    consoleRequest(`${gateway.url}${convPath}/${action}`, {
      headers: { cookie: session.cookie, origin: session.origin, ...headers },
      form: { back: convPath, ...form },
    });
  const quarantine = { get: (c: ConversationId) => new Quarantine(redis, instance).get(c) };

  it('refuses an action without the CSRF token (403) and does nothing', async () => {
    const refused = await post('kill', { reason: 'no csrf' });
    expect(refused.status).toBe(403);
    expect(refused.body).toContain('CSRF');
    expect(await quarantine.get(conversation)).toBeUndefined();
  });

  it('refuses an action with a foreign or missing Origin (403) and does nothing', async () => {
    const foreign = await post(
      'kill',
      { reason: 'evil', csrf: session.csrf },
      { origin: 'http://evil.example' },
    );
    expect(foreign.status).toBe(403);
    const missing = await consoleRequest(`${gateway.url}${convPath}/kill`, {
      headers: { cookie: session.cookie },
      form: { reason: 'no origin', csrf: session.csrf },
    });
    expect(missing.status).toBe(403);
    expect(await quarantine.get(conversation)).toBeUndefined();
  });

  it('refuses to grant a private address or a whole public suffix, in words', async () => {
    const policy = new NetworkPolicyStore(redis, instance, config.SANDBOT_NETWORK_RULES);
    for (const [host, words] of [
      ['10.0.0.1', 'private'],
      ['*.com', 'public suffix'],
    ] as const) {
      const answer = await post('grant', { hosts: host, csrf: session.csrf });
      expect(answer.status).toBe(303);
      const page = await consoleRequest(`${gateway.url}${convPath}`, { headers: { cookie: session.cookie } });
      expect(page.body).toContain('Nothing granted');
      expect(page.body).toContain(words);
    }
    expect(await policy.grantsFor(conversation)).toEqual([]);
  });

  it('grants and revokes a host, recorded as admin:console:<name>', async () => {
    const policy = new NetworkPolicyStore(redis, instance, config.SANDBOT_NETWORK_RULES);
    expect((await post('grant', { hosts: 'pypi.org', csrf: session.csrf })).status).toBe(303);
    expect(await policy.grantsFor(conversation)).toEqual(['pypi.org']);
    expect((await post('revoke', { host: 'pypi.org', csrf: session.csrf })).status).toBe(303);
    expect(await policy.grantsFor(conversation)).toEqual([]);
    const events = await auditEvents(
      conversation,
      (e) => e.filter((x) => x.kind === 'policy.change').length >= 2,
    );
    const changes = events.filter((e) => e.kind === 'policy.change');
    expect(changes.map((e) => e.actor)).toEqual(['admin:console:Ada', 'admin:console:Ada']);
    expect(changes[1]?.data).toMatchObject({ revoked: 'pypi.org', grants: [] });
  });

  it('kills with a reason: quarantined, recorded, and the flash says so', async () => {
    const killed = await post('kill', { reason: 'looks wrong', csrf: session.csrf });
    expect(killed.status).toBe(303);
    expect(killed.headers.location).toBe(convPath);
    expect(await quarantine.get(conversation)).toMatchObject({
      reason: 'looks wrong',
      by: 'admin:console:Ada',
    });
    const page = await consoleRequest(`${gateway.url}${convPath}`, { headers: { cookie: session.cookie } });
    expect(page.body).toContain('quarantined');
    const events = await auditEvents(conversation, (e) => e.some((x) => x.kind === 'sandbox.quarantine'));
    expect(events.find((e) => e.kind === 'sandbox.quarantine')?.actor).toBe('admin:console:Ada');
    expect((await post('release', { csrf: session.csrf })).status).toBe(303);
    expect(await quarantine.get(conversation)).toBeUndefined();
  });

  it('records a stop that found no turn running', async () => {
    expect((await post('stop', { csrf: session.csrf })).status).toBe(303);
    const events = await auditEvents(conversation, (e) => e.some((x) => x.kind === 'admin.action'));
    expect(events.find((e) => e.kind === 'admin.action')).toMatchObject({
      actor: 'admin:console:Ada',
      data: { action: 'stop', detail: 'no turn was running' },
    });
  });

  it('decides an approval once, and a second click changes nothing', async () => {
    const approvals = new ApprovalStore(redis, instance);
    const request = await approvals.create({
      conversation,
      platform: 'web',
      route: {},
      kind: 'network',
      target: 'example.org',
      reason: 'needs <b>docs</b>',
      turnId: `${conversation}#1`,
      timeoutSeconds: 300,
    });
    const decide = (decision: string) =>
      consoleRequest(`${gateway.url}/console/approvals/${request.id}/decide`, {
        headers: { cookie: session.cookie, origin: session.origin },
        form: { csrf: session.csrf, decision, back: '/console' },
      });
    const refused = await consoleRequest(`${gateway.url}/console/approvals/${request.id}/decide`, {
      headers: { cookie: session.cookie, origin: session.origin },
      form: { decision: 'approve' },
    });
    expect(refused.status).toBe(403);
    expect((await approvals.get(request.id))?.status).toBe('pending');
    expect((await decide('deny')).status).toBe(303);
    expect((await decide('approve')).status).toBe(303);
    expect(await approvals.get(request.id)).toMatchObject({
      status: 'denied',
      decidedBy: 'admin:console:Ada',
    });
    const page = await consoleRequest(`${gateway.url}/console`, { headers: { cookie: session.cookie } });
    expect(page.body).toContain('Already denied by Ada');
    const unknown = await consoleRequest(
      `${gateway.url}/console/approvals/${encodeURIComponent('x:y')}/decide`,
      {
        headers: { cookie: session.cookie, origin: session.origin },
        form: { csrf: session.csrf, decision: 'approve', back: '/console' },
      },
    );
    expect(unknown.status).toBe(303);
    const after = await consoleRequest(`${gateway.url}/console`, { headers: { cookie: session.cookie } });
    expect(after.body).toContain('No such request.');
  });

  it('queues a reset in order with the messages, recorded as the operator', async () => {
    expect((await post('reset', { csrf: session.csrf })).status).toBe(303);
    expect(await new ConversationStore(redis, instance).pendingCount(conversation)).toBe(1);
    const events = await auditEvents(conversation, (e) =>
      e.some((x) => x.kind === 'message.received' && x.data.command === 'reset'),
    );
    expect(events.find((e) => e.kind === 'admin.action' && e.data.action === 'reset')?.actor).toBe(
      'admin:console:Ada',
    );
    expect(events.find((e) => e.kind === 'message.received')?.data).toMatchObject({ command: 'reset' });
  });

  it('streams the timeline to a signed-in session only, from after the last event shown', async () => {
    const url = `${gateway.url}${convPath}/events`;
    expect((await consoleRequest(url)).status).toBe(401);
    const events = await auditEvents(conversation, (e) => e.length >= 3);
    const abort = new AbortController();
    const response = await fetch(`${url}?after=${events.length - 2}`, {
      headers: { cookie: session.cookie },
      signal: abort.signal,
    });
    expect(response.headers.get('content-type')).toContain('text/event-stream');
    if (!response.body) throw new Error('no event stream');
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let text = '';
    while ((text.match(/^data: /gm) ?? []).length < 2) text += (await reader.read()).value ?? '';
    abort.abort();
    const seqs = [...text.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
    expect(seqs).toEqual([events.length - 1, events.length]);
  });

  it('shows the task board and each worker’s reported sandboxes', async () => {
    const task = 'slack:T1:C2:1700000000.000100' as ConversationId;
    await new TaskStore(redis, instance).create(
      {
        conversation: task,
        scope: 'slack:T1:C2',
        owner: { platform: 'slack', id: 'U1', name: 'grace' },
        title: 'Fix the <flaky> build',
        createdAt: new Date().toISOString(),
        root: task,
        depth: 0,
      },
      'running',
    );
    await writeSandboxReport(redis, instance, 'w-test', {
      at: Date.now(),
      sandboxes: [
        {
          conversation: task,
          state: 'running',
          cpuPercent: 12.5,
          memoryBytes: 64 * 1024 * 1024,
          memoryLimitBytes: 256 * 1024 * 1024,
          diskUsedBytes: 3 * 1024 * 1024,
          diskTotalBytes: 2048 * 1024 * 1024,
        },
      ],
    });
    const page = (await consoleRequest(`${gateway.url}/console`, { headers: { cookie: session.cookie } }))
      .body;
    expect(page).toContain('Fix the &lt;flaky&gt; build');
    expect(page).toContain('grace');
    expect(page).toContain('<td>12.5%</td><td>64.0 MiB of 256.0 MiB</td><td>3.0 MiB of 2.0 GiB</td>');
    // The task's conversation is listed too, with its channel.
    expect(page).toContain('<td>slack</td><td>T1:C2</td>');
  });

  it('signs out: the session is gone', async () => {
    const out = await consoleRequest(`${gateway.url}/console/logout`, {
      headers: { cookie: session.cookie, origin: session.origin },
      form: { csrf: session.csrf },
    });
    expect(out.status).toBe(303);
    expect(String(out.headers['set-cookie'])).toContain('Max-Age=0');
    const after = await post('kill', { reason: 'late', csrf: session.csrf });
    expect(after.status).toBe(401);
  });
});

describe('console sign-in throttle', () => {
  it('refuses sign-in for a while after too many wrong tokens from one address', async () => {
    const attempt = (token: string) =>
      consoleRequest(`${gateway.url}/console/login`, {
        headers: { origin: gateway.url },
        form: { token, name: 'Mallory' },
      });
    let last = 0;
    for (let i = 0; i < 12 && last !== 429; i++) last = (await attempt('wrong')).status;
    expect(last).toBe(429);
    // Even the right token waits now.
    const right = await attempt(TOKEN);
    expect(right.status).toBe(429);
    expect(right.headers['set-cookie']).toBeUndefined();
    await redis.del(
      consoleKeys(instance).failures('127.0.0.1'),
      consoleKeys(instance).failures('::ffff:127.0.0.1'),
    );
  });
});
