import { describe, expect, it } from 'vitest';
import type { Approval } from '../../src/contracts/approvals/approval.js';
import { webConversationId } from '../../src/contracts/conversation/id.js';
import { consoleKeys, instanceKeys } from '../../src/contracts/redis/keys.js';
import { parseAction, parseHost, routeOf } from '../../src/gateway/console/console-actions.js';
import { channelOf, orderRows } from '../../src/gateway/console/console-data.js';
import {
  backTo,
  consoleActor,
  contentSecurityPolicy,
  judgePost,
  operatorName,
  originAllowed,
  sessionCookie,
  sessionIdFrom,
} from '../../src/gateway/console/console-security.js';
import { escapeHtml, html } from '../../src/gateway/console/html.js';
import { formatBytes } from '../../src/gateway/console/layout.js';
import { approvalBlock, conversationBody } from '../../src/gateway/console/pages.js';
import { usageOf } from '../../src/worker/sandboxes/sandbox-stats.js';

const conv = webConversationId('alice');

describe('console security decisions', () => {
  it('accepts only an Origin that is this server', () => {
    expect(originAllowed('http://127.0.0.1:8787', '127.0.0.1:8787')).toBe(true);
    expect(originAllowed('https://console.example.org', 'console.example.org')).toBe(true);
    expect(originAllowed('http://localhost:80', 'localhost')).toBe(true);
    expect(originAllowed(undefined, '127.0.0.1:8787')).toBe(false);
    expect(originAllowed('null', '127.0.0.1:8787')).toBe(false);
    expect(originAllowed('http://127.0.0.1:9999', '127.0.0.1:8787')).toBe(false);
    expect(originAllowed('http://evil.example', '127.0.0.1:8787')).toBe(false);
    expect(originAllowed('http://127.0.0.1:8787.evil.example', '127.0.0.1:8787')).toBe(false);
    expect(originAllowed('javascript:alert(1)', '127.0.0.1:8787')).toBe(false);
  });

  it('lets a POST through only with a session, its Origin and its CSRF token', () => {
    const base = {
      session: { csrf: 'c'.repeat(43) },
      origin: 'http://h:1',
      host: 'h:1',
      csrf: 'c'.repeat(43),
    };
    expect(judgePost(base)).toEqual({ ok: true });
    expect(judgePost({ ...base, session: undefined })).toMatchObject({ ok: false, status: 401 });
    expect(judgePost({ ...base, origin: 'http://other:1' })).toMatchObject({ ok: false, status: 403 });
    expect(judgePost({ ...base, csrf: undefined })).toMatchObject({ ok: false, status: 403 });
    expect(judgePost({ ...base, csrf: 'd'.repeat(43) })).toMatchObject({ ok: false, status: 403 });
    expect(judgePost({ ...base, csrf: '' })).toMatchObject({ ok: false, status: 403 });
  });

  it('makes the operator name one safe line for the audit actor', () => {
    expect(operatorName('  Ada\nLovelace\u202e ')).toBe('Ada Lovelace');
    expect(operatorName('\n\t')).toBeUndefined();
    expect(operatorName(42)).toBeUndefined();
    expect(operatorName('x'.repeat(300))).toHaveLength(100);
    expect(consoleActor('Ada Lovelace')).toBe('admin:console:Ada Lovelace');
  });

  it('sets a cookie that is HttpOnly, SameSite=Strict, under /console, Secure over https', () => {
    expect(sessionCookie('abc', false)).toBe(
      'sandbot_console=abc; Path=/console; HttpOnly; SameSite=Strict; Max-Age=43200',
    );
    expect(sessionCookie('abc', true)).toMatch(/; Secure$/);
    const id = 'A'.repeat(43);
    expect(sessionIdFrom(`other=1; sandbot_console=${id}`)).toBe(id);
    expect(sessionIdFrom('sandbot_console=<script>')).toBeUndefined();
    expect(sessionIdFrom(undefined)).toBeUndefined();
  });

  it('sends the browser back only to console pages', () => {
    expect(backTo('/console')).toBe('/console');
    expect(backTo('/console/conversations/web%3Aalice')).toBe('/console/conversations/web%3Aalice');
    expect(backTo('https://evil.example')).toBe('/console');
    expect(backTo('//evil.example')).toBe('/console');
    expect(backTo('/console/../metrics')).toBe('/console');
  });

  it('allows only nonce’d scripts and styles', () => {
    const csp = contentSecurityPolicy('N0nce');
    expect(csp).toContain("script-src 'nonce-N0nce'");
    expect(csp).toContain("default-src 'none'");
    expect(csp).not.toContain('unsafe-inline');
  });

  it('keeps its Redis keys under the instance, the session id hashed', () => {
    expect(instanceKeys('sb').sandboxes).toBe('sb:sandboxes');
    const key = consoleKeys('sb').session('secret-session-id');
    expect(key).toMatch(/^sb:console:session:[0-9a-f]{20}$/);
    expect(key).not.toContain('secret');
  });
});

describe('console HTML', () => {
  it('escapes every interpolated value', () => {
    expect(escapeHtml(`<a href="x">'&\``)).toBe('&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#96;');
    expect(html`<p>${'<script>alert(1)</script>'}</p>`.text).toBe(
      '<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>',
    );
    expect(html`<ul>${['<b>', html`<li>ok</li>`]}</ul>`.text).toBe('<ul>&lt;b&gt;<li>ok</li></ul>');
  });

  it('shows an agent’s reason with <script> as text', () => {
    const approval: Approval = {
      id: 'apr_abcdefghijkl',
      conversation: conv,
      platform: 'web',
      route: {},
      kind: 'network',
      target: 'evil.example"><script>',
      reason: '<script>alert("owned")</script>',
      turnId: `${conv}#1`,
      requestedAt: new Date(0).toISOString(),
      expiresAtMs: 60_000,
      status: 'pending',
    };
    const out = approvalBlock(approval, { csrf: 'tok', now: 0 }, '/console').text;
    expect(out).not.toContain('<script>');
    expect(out).toContain('&lt;script&gt;alert(&quot;owned&quot;)&lt;/script&gt;');
    expect(out.match(/<button/g)).toHaveLength(3);
  });

  it('renders the timeline’s untrusted commands and file names as text', () => {
    const event = {
      id: '00000000-0000-4000-8000-000000000000',
      time: '2026-01-01T00:00:00.000Z',
      conversation: conv,
      actor: 'agent' as const,
      kind: 'tool.call' as const,
      data: { name: 'bash', args: { command: 'echo "<img src=x onerror=alert(1)>"' }, reported: false },
      seq: 1,
      prevHash: '0'.repeat(64),
      hash: '1'.repeat(64),
    };
    const out = conversationBody(
      {
        row: { conversation: conv, platform: 'web', channel: 'web chat', state: 'idle', pending: 0 },
        grants: [],
        events: [event],
        approvals: [],
      },
      { csrf: 'tok', now: 0 },
    ).text;
    expect(out).not.toContain('<img');
    expect(out).toContain('$ echo &quot;&lt;img src=x onerror=alert(1)&gt;&quot;');
    expect(out).toContain('data-last="1"');
  });
});

describe('console actions and data', () => {
  it('refuses private addresses and whole public suffixes as grants, with words', () => {
    expect(parseHost('10.0.0.1')).toEqual({
      error:
        '"10.0.0.1" is not a public host (10.0.0.1 is a private, loopback, link-local or metadata address)',
    });
    expect(parseHost('169.254.169.254:80')).toMatchObject({ error: expect.stringContaining('metadata') });
    expect(parseHost('[::1]')).toMatchObject({ error: expect.stringContaining('loopback') });
    expect(parseHost('*.com')).toMatchObject({ error: expect.stringContaining('public suffix') });
    expect(parseHost('PyPI.org')).toEqual({ grant: 'pypi.org' });
    expect(parseAction('grant', { hosts: 'pypi.org, *.github.com:443' })).toEqual({
      kind: 'grant',
      grants: ['pypi.org', '*.github.com:443'],
    });
    expect(parseAction('grant', { hosts: 'pypi.org 10.1.2.3' })).toMatchObject({ kind: 'invalid' });
    expect(parseAction('kill', { reason: '  ' })).toMatchObject({ kind: 'invalid' });
    expect(parseAction('format-disk', {})).toMatchObject({ kind: 'invalid' });
  });

  it('answers a reset where the conversation lives', () => {
    expect(routeOf(webConversationId('x'))).toEqual({});
    expect(routeOf('slack:T1:C2:1700000000.000100' as never)).toEqual({
      team: 'T1',
      channel: 'C2',
      thread_ts: '1700000000.000100',
    });
    expect(routeOf('slack:T1:D2:dm' as never)).toEqual({ team: 'T1', channel: 'D2' });
    expect(routeOf('discord:G1:C2:T3' as never)).toEqual({ channelId: 'T3', guildId: 'G1' });
    expect(routeOf('discord:dm:C9' as never)).toEqual({ channelId: 'C9' });
  });

  it('names channels and lists running conversations first', () => {
    expect(channelOf('slack:T1:C2:1.2' as never)).toBe('T1:C2');
    expect(channelOf('discord:dm:C9' as never)).toBe('DM C9');
    expect(channelOf(conv)).toBe('web chat');
    const row = (c: string, state: 'running' | 'idle', lastActivity: number) => ({
      conversation: c as never,
      platform: 'web' as const,
      channel: '',
      state,
      pending: 0,
      lastActivity,
    });
    const ordered = orderRows([row('web:a', 'idle', 3), row('web:b', 'running', 1), row('web:c', 'idle', 5)]);
    expect(ordered.map((r) => r.conversation)).toEqual(['web:b', 'web:c', 'web:a']);
  });

  it('reads CPU and memory from Docker’s stats as docker stats does', () => {
    expect(
      usageOf({
        cpu_stats: { cpu_usage: { total_usage: 3_000_000 }, system_cpu_usage: 20_000_000, online_cpus: 2 },
        precpu_stats: { cpu_usage: { total_usage: 1_000_000 }, system_cpu_usage: 10_000_000 },
        memory_stats: { usage: 50_000_000, limit: 268_435_456, stats: { inactive_file: 10_000_000 } },
      }),
    ).toEqual({ cpuPercent: 40, memoryBytes: 40_000_000, memoryLimitBytes: 268_435_456 });
    expect(usageOf({})).toEqual({});
    expect(formatBytes(40_000_000)).toBe('38.1 MiB');
  });
});
