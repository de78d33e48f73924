import { Redis } from 'ioredis';
import puppeteer from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDocker } from '../../sandbox/host/driver/docker-client.js';
import type { Approval } from '../../src/contracts/approvals/approval.js';
import type { ApprovalCard } from '../../src/contracts/approvals/approval-card.js';
import { webConversationId } from '../../src/contracts/conversation/id.js';
import type { OutboundEvent } from '../../src/contracts/protocol/outbound.js';
import { instanceKeys } from '../../src/contracts/redis/keys.js';
import { AuditJournal } from '../../src/shared/audit/journal.js';
import { parseEvents } from '../../src/shared/audit/summary.js';
import { ApprovalAllowances } from '../../src/shared/stores/approval-allowances.js';
import { ApprovalStore } from '../../src/shared/stores/approval-store.js';
import { NetworkPolicyStore } from '../../src/shared/stores/policy-store.js';
import { HostCallLedger, relayHostTool } from '../../src/worker/turn/host-tool-relay.js';
import type { FakeChatRequest, FakeStep } from '../../testkit/fakes/fake-ollama.js';
import { type OutsideHost, startOutsideHost } from '../../testkit/outside-host.js';
import { REDIS_URL, testInstance } from '../../testkit/redis.js';
import { greeterSkill } from '../helpers/skill-fixtures.js';
import { registryOf, removeSkillVolumes, skillsDir, toolsOffered, vetSkill } from '../helpers/skill-stack.js';
import { openSse, postMessage, type SseClient } from '../helpers/sse.js';
import { type ScriptedStack, startScriptedStack, testConfig } from '../helpers/stack.js';

/**
 * Approvals end to end through the web chat, on real parts (Redis, the worker, real sandboxes and the
 * egress proxy; only the model is scripted): the model's `request_access` call becomes a card in the web
 * event stream, the web route decides it (the API token makes an approver; nobody else), once however
 * many clicks, and the worker applies the outcome, edits the card and tells the model who decided.
 * The waiting turn holds no model call and no CPU: the other worker slot still serves another chat.
 */

const TOKEN = 'approvals-test-token-0123456789abcdef';
const AUTH = { authorization: `Bearer ${TOKEN}` };
const OUTSIDE = '192.88.99.10';
const HOST = 'pkgs.example.test';
const docker = createDocker(undefined);
const config = testConfig(testInstance('approvals-web'), {
  SANDBOT_API_TOKEN: TOKEN,
  SANDBOT_APPROVAL_TIMEOUT_SECONDS: '10',
  SANDBOT_WORKER_CONCURRENCY: '2',
  SANDBOT_EGRESS_PORT: '0',
  SANDBOT_DELEGATE_MAX_FANOUT: '1',
});
let outside: OutsideHost;
let stack: ScriptedStack;
const redis = new Redis(REDIS_URL);
const store = new ApprovalStore(redis, config.SANDBOT_INSTANCE);

type Message = FakeChatRequest['messages'][number];

/**
 * `ASK <json>`: the model calls request_access with that (an array: several calls in one answer);
 * `DELEGATE a b`: a sub-agent per word, at once; anything else runs as a bash command. After tool results
 * the model answers with what it read.
 */
function script(request: FakeChatRequest): FakeStep {
  const messages = request.messages.filter((m) => m.role !== 'system');
  // The turn's own message (the history holds the earlier ones).
  const first = [...messages].reverse().find((m) => m.role === 'user')?.content ?? '';
  const last = messages.at(-1);
  if (last?.role === 'tool') {
    const from = messages.map((m) => m.role).lastIndexOf('assistant');
    return {
      reply: `model saw: ${messages
        .slice(from + 1)
        .map(resultLine)
        .join(' | ')}`,
    };
  }
  if (/You are sub-agent/.test(first)) return { reply: 'sub-agent done' };
  if (first.startsWith('DELEGATE ')) {
    const tasks = first.slice('DELEGATE '.length).split(' ');
    return { toolCalls: tasks.map((task) => ({ name: 'delegate', arguments: { task } })) };
  }
  if (first.startsWith('ASK ')) {
    const parsed = JSON.parse(first.slice(4)) as Record<string, unknown> | Record<string, unknown>[];
    const calls = Array.isArray(parsed) ? parsed : [parsed];
    return { toolCalls: calls.map((args) => ({ name: 'request_access', arguments: args })) };
  }
  return { toolCalls: [{ name: 'bash', arguments: { command: first } }] };
}
const resultLine = (m: Message) => `${m.tool_name}: ${m.content}`;

beforeAll(async () => {
  // An admin-approved skill the agent may ask for.
  Object.assign(config, { SANDBOT_SKILLS_DIR: await skillsDir() });
  await vetSkill(registryOf(config), greeterSkill());
  outside = await startOutsideHost(docker, {
    name: `sbx-apr-outside-${process.pid}`,
    subnet: '192.88.99.0/24', // not the host's own network (192.0.2.0/24 here), nor another test's
    address: OUTSIDE,
  });
  stack = await startScriptedStack(config, script, {
    lookup: async (host) =>
      host === HOST ? [{ address: OUTSIDE, family: 4 }] : Promise.reject(new Error('ENOTFOUND')),
  });
});

afterAll(async () => {
  await stack?.stop();
  await removeSkillVolumes(docker, config.SANDBOT_INSTANCE);
  await outside?.stop();
  redis.disconnect();
});

const events = (session: string) =>
  openSse(`${stack.url}/api/conversations/${session}/events?token=${TOKEN}`);
const send = (session: string, text: string) => postMessage(stack.url, session, text, 'tester', AUTH);
const decide = (id: string, decision: string, headers: Record<string, string> = AUTH) =>
  fetch(`${stack.url}/api/approvals/${id}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ decision }),
  });
const ask = (args: unknown) => `ASK ${JSON.stringify(args)}`;

type CardEvent = Extract<OutboundEvent, { type: 'approval' }> & { card: ApprovalCard };
const card = (sse: SseClient, status: Approval['status'], timeoutMs?: number) =>
  sse.waitFor((e) => e.type === 'approval' && e.approval.status === status, timeoutMs) as Promise<CardEvent>;
const reply = async (sse: SseClient) => {
  // A sub-agent's end shows in its parent's thread as a reply of its own ("🤖 sub-agent … finished.").
  const end = await sse.waitFor(
    (e) => (e.type === 'reply' && !e.text.startsWith('🤖')) || e.type === 'error',
  );
  if (end.type !== 'reply') throw new Error(`turn failed: ${JSON.stringify(end)}`);
  return end.text;
};
const toolResults = (name: string) =>
  stack.ollama
    .chatRequests()
    .flatMap((r) => r.messages)
    .filter((m) => m.role === 'tool' && m.tool_name === name)
    .map((m) => m.content);
const audit = async (session: string) => {
  const journal = new AuditJournal(config.SANDBOT_AUDIT_DIR, config.SANDBOT_INSTANCE);
  return parseEvents((await journal.read(webConversationId(session))) ?? '');
};

describe('approvals through the web chat', () => {
  it('asks, refuses non-approvers, applies one of two clicks, and the grant works from the next turn', {
    timeout: 180_000,
  }, async () => {
    const sse = await events('net');
    try {
      await send('net', ask({ kind: 'network', host: `${HOST}:8080`, reason: 'fetch the package index' }));
      const pending = await card(sse, 'pending');
      expect(pending.card.title).toBe(`🔐 The agent asks for network access to ${HOST}:8080`);
      expect(pending.card.reason).toBe(
        "The agent's reason (its own words, not checked): “fetch the package index”",
      );
      expect(pending.card.buttons.map((b) => b.label)).toEqual([
        'Approve for this conversation',
        'Approve for 1 hour',
        'Deny',
      ]);
      const id = pending.approval.id;

      // Nobody without the token decides: no header, a wrong token.
      expect((await decide(id, 'approve', {})).status).toBe(401);
      expect((await decide(id, 'approve', { authorization: 'Bearer wrong-token' })).status).toBe(401);
      const bad = await decide(id, 'maybe');
      expect(bad.status).toBe(400);
      expect(((await bad.json()) as { error: string }).error).toContain('decision');
      expect((await decide('apr_doesnotexist00', 'approve')).status).toBe(404);
      expect((await store.get(id))?.status).toBe('pending');

      // While it waits the model is not called, and the other slot still runs another conversation's turn.
      const before = stack.ollama.chatRequests().length;
      const other = await events('other');
      try {
        await send('other', 'echo other-turn-ran');
        expect(await reply(other)).toContain('other-turn-ran');
      } finally {
        other.close();
      }
      const during = stack.ollama
        .chatRequests()
        .filter((r) => r.messages.some((m) => m.content.startsWith('ASK ')));
      expect(stack.ollama.chatRequests().length - before).toBe(2); // the other turn's two calls only
      expect(during).toHaveLength(1);

      // A double click: one decision, the other told it came too late.
      const clicks = await Promise.all([decide(id, 'approve'), decide(id, 'approve')]);
      expect(clicks.map((r) => r.status).sort()).toEqual([200, 409]);
      const late = clicks.find((r) => r.status === 409);
      expect(((await late?.json()) as { error?: string } | undefined)?.error).toContain(
        'Approved for this conversation by the web API',
      );

      const decided = await card(sse, 'approved');
      expect(decided.card.buttons).toEqual([]);
      expect(decided.card.outcome).toMatch(/^✅ Approved for this conversation by the web API at \d{4}-/);
      const text = await reply(sse);
      expect(text).toContain(
        `approved by the web API (admin:web-api) for this conversation: ${HOST}:8080 is granted`,
      );
      expect(toolResults('request_access').at(-1)).toContain('It works from your next turn');
    } finally {
      sse.close();
    }
    const policy = new NetworkPolicyStore(redis, config.SANDBOT_INSTANCE, []);
    expect(await policy.grantsFor(webConversationId('net'))).toEqual([`${HOST}:8080`]);

    const next = await events('net');
    try {
      await send('net', `curl -s http://${HOST}:8080/index`);
      expect(await reply(next)).toContain('outside says hi to /index');
    } finally {
      next.close();
    }
    await expect
      .poll(async () => (await audit('net')).filter((e) => e.kind.startsWith('approval.')).length, {
        timeout: 20_000,
      })
      .toBe(2);
    const [asked, ended] = (await audit('net')).filter((e) => e.kind.startsWith('approval.'));
    expect(asked).toMatchObject({
      kind: 'approval.requested',
      actor: 'agent',
      data: { kind: 'network', target: `${HOST}:8080`, reason: 'fetch the package index' },
    });
    expect(ended).toMatchObject({
      kind: 'approval.decided',
      actor: 'admin:web-api',
      data: { status: 'approved', scope: 'conversation' },
    });
  });

  it('grants a host for one hour without touching the conversation’s grants', async () => {
    const sse = await events('hour');
    try {
      await send('hour', ask({ kind: 'network', host: `${HOST}:8080`, reason: 'one download' }));
      const pending = await card(sse, 'pending');
      expect((await decide(pending.approval.id, 'approve_hour')).status).toBe(200);
      expect((await card(sse, 'approved')).card.outcome).toMatch(/^✅ Approved for 1 hour by the web API/);
      expect(await reply(sse)).toMatch(/for 1 hour: pkgs\.example\.test:8080 is granted until \d{4}-/);
      sse.events.length = 0;
      await send('hour', `curl -s http://${HOST}:8080/hourly`);
      expect(await reply(sse)).toContain('outside says hi to /hourly');
    } finally {
      sse.close();
    }
    const policy = new NetworkPolicyStore(redis, config.SANDBOT_INSTANCE, []);
    expect(await policy.grantsFor(webConversationId('hour'))).toEqual([]);
    const allowances = new ApprovalAllowances(redis, config.SANDBOT_INSTANCE);
    expect(await allowances.grants(webConversationId('hour'))).toEqual([`${HOST}:8080`]);
  });

  it('tells the model a denial, and grants nothing', async () => {
    const sse = await events('deny');
    try {
      await send('deny', ask({ kind: 'network', host: 'deny.example.test', reason: 'just because' }));
      const pending = await card(sse, 'pending');
      expect((await decide(pending.approval.id, 'deny')).status).toBe(200);
      expect((await card(sse, 'denied')).card.outcome).toMatch(/^⛔ Denied by the web API at /);
      expect(await reply(sse)).toContain(
        'request_access (network deny.example.test) denied by the web API (admin:web-api): do without it',
      );
    } finally {
      sse.close();
    }
    const policy = new NetworkPolicyStore(redis, config.SANDBOT_INSTANCE, []);
    expect(await policy.grantsFor(webConversationId('deny'))).toEqual([]);
  });

  it('expires an undecided request as denied, edits the card, and refuses a click after', async () => {
    const sse = await events('expire');
    try {
      await send('expire', ask({ kind: 'network', host: 'slow.example.test', reason: 'nobody answers' }));
      const pending = await card(sse, 'pending');
      expect(pending.approval.expiresAtMs - Date.parse(pending.approval.requestedAt)).toBe(10_000);
      const expired = await card(sse, 'expired', 30_000);
      expect(expired.card.outcome).toMatch(/^⌛ Expired without a decision: denied at /);
      expect(expired.card.buttons).toEqual([]);
      expect(await reply(sse)).toContain(
        'request_access (network slow.example.test) expired without a decision: denied',
      );
      const late = await decide(pending.approval.id, 'approve');
      expect(late.status).toBe(409);
      expect((await store.get(pending.approval.id))?.status).toBe('expired');
    } finally {
      sse.close();
    }
    await expect
      .poll(async () => (await audit('expire')).find((e) => e.kind === 'approval.decided')?.actor, {
        timeout: 20_000,
      })
      .toMatch(/^worker:/);
  });

  it('ends the request when the turn is stopped while it waits, and edits the card', async () => {
    const sse = await events('stopped');
    try {
      await send('stopped', ask({ kind: 'network', host: 'stop.example.test', reason: 'wait for me' }));
      const pending = await card(sse, 'pending');
      const stop = { action: 'stop', conversation: webConversationId('stopped'), by: 'admin:test' };
      await redis.publish(instanceKeys(config.SANDBOT_INSTANCE).control, JSON.stringify(stop));
      const ended = await card(sse, 'expired', 20_000);
      expect(ended.approval.id).toBe(pending.approval.id);
      expect(ended.card.outcome).toMatch(/^⌛ the turn ended before a decision at /);
      expect((await decide(pending.approval.id, 'approve')).status).toBe(409);
    } finally {
      sse.close();
    }
  });

  it('enables an admin-approved skill for the conversation once approved, from the next turn', async () => {
    const sse = await events('skill');
    try {
      await send('skill', ask({ kind: 'skill', skill: 'greeter', reason: 'to greet the team' }));
      const pending = await card(sse, 'pending');
      expect(pending.card.title).toBe('🔐 The agent asks to use the skill greeter');
      expect((await decide(pending.approval.id, 'approve')).status).toBe(200);
      expect(await reply(sse)).toContain(
        'approved by the web API (admin:web-api) for this conversation: Skill greeter@1.0.0 is enabled here from the next turn',
      );
      sse.events.length = 0;
      await send('skill', 'echo next-turn');
      expect(await reply(sse)).toContain('next-turn');
      expect(toolsOffered(stack.ollama.chatRequests(), 'echo next-turn')).toContain('greet');
    } finally {
      sse.close();
    }
  });

  it('refuses what can never be granted in words, with no card', async () => {
    const sse = await events('private');
    try {
      await send(
        'private',
        ask([
          { kind: 'network', host: '10.0.0.1', reason: 'internal' },
          { kind: 'network', host: '*.com', reason: 'everything' },
          { kind: 'skill', skill: 'no-such-skill', reason: 'tools' },
        ]),
      );
      const text = await reply(sse);
      expect(text).toContain('request_access refused: "10.0.0.1" cannot be granted: 10.0.0.1 is a private');
      expect(text).toContain('request_access refused: "*.com" cannot be granted');
      expect(text).toContain('request_access refused: skill no-such-skill cannot be enabled');
      expect(sse.events.filter((e) => e.type === 'approval')).toEqual([]);
    } finally {
      sse.close();
    }
  });

  it('carries out request_access only when the model made the call', async () => {
    const sent: unknown[] = [];
    const turn = {
      turnId: 'forged',
      conversation: webConversationId('forged'),
      fromSeq: 0,
      toSeq: 0,
      messages: [],
    };
    const hostTools = {
      offered: async () => [],
      run: async () => ({ ok: true, output: 'must not run' }),
    };
    await relayHostTool({
      hostTools,
      ledger: new HostCallLedger(),
      turn,
      request: {
        type: 'host_tool_request',
        turnId: 'forged',
        requestId: 'r1',
        name: 'request_access',
        args: { kind: 'network', host: 'pypi.org', reason: 'forged' },
      },
      signal: new AbortController().signal,
      send: (message) => sent.push(message),
      log: { warn: () => undefined } as never,
    });
    expect(sent).toEqual([
      expect.objectContaining({
        ok: false,
        output: 'request_access refused: the model made no such call in this turn',
      }),
    ]);
  });

  it('lets one more sub-agent than SANDBOT_DELEGATE_MAX_FANOUT start after an approval', async () => {
    const sse = await events('deleg');
    try {
      await send('deleg', 'DELEGATE one two');
      const first = await reply(sse);
      expect(first).toContain('delegate: Sub-agent sub-1 answered:\nsub-agent done');
      expect(first).toContain('delegate: delegate refused: you have started 1 sub-agents');
      sse.events.length = 0;
      await send('deleg', 'DELEGATE three');
      expect(await reply(sse)).toContain('delegate refused: you have started 1 sub-agents');
      sse.events.length = 0;
      await send('deleg', ask({ kind: 'delegate', count: 1, reason: 'two sources to read at once' }));
      const pending = await card(sse, 'pending');
      expect(pending.card.title).toBe('🔐 The agent asks for 1 more sub-agent(s) than its limit');
      expect((await decide(pending.approval.id, 'approve_hour')).status).toBe(200);
      expect(await reply(sse)).toContain(
        'approved by the web API (admin:web-api) for 1 hour: you may start 1 more sub-agent(s) than the limit until',
      );
      const allowances = new ApprovalAllowances(redis, config.SANDBOT_INSTANCE);
      expect(await allowances.extraSubAgents(webConversationId('deleg'))).toBe(1);
      sse.events.length = 0;
      await send('deleg', 'DELEGATE four');
      const text = await reply(sse);
      expect(text).not.toContain('refused');
      expect(text).toMatch(/Sub-agent sub-\d+ answered:\nsub-agent done/);
    } finally {
      sse.close();
    }
  }, 240_000);

  it('shows the card in the web chat page, its words as text, and its buttons decide', async () => {
    const browser = await puppeteer.launch({
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      headless: true,
      args: ['--no-sandbox', '--disable-gpu'],
    });
    try {
      const page = await browser.newPage();
      await page.goto(`${stack.url}/`);
      await page.$eval('#token', (e, token) => ((e as HTMLInputElement).value = token), TOKEN);
      await page.$eval('#conversation', (e) => ((e as HTMLInputElement).value = 'browser'));
      await page.$eval('#user', (e) => ((e as HTMLInputElement).value = 'ana'));
      await page.click('#settings button[type=submit]');
      const reason = 'see <img src=x onerror="document.title=1"> here';
      await page.type('#text', ask({ kind: 'network', host: 'browser.example.test', reason }));
      await page.click('#send');
      await page.waitForSelector('.message.approval .buttons button', { timeout: 30_000 });
      const shown = await page.$eval('.message.approval', (e) => ({
        title: e.querySelector('.body')?.textContent,
        reason: e.querySelector('.reason')?.textContent,
        images: e.querySelectorAll('img').length,
        buttons: [...e.querySelectorAll('button')].map((b) => b.textContent),
      }));
      expect(shown).toEqual({
        title: '🔐 The agent asks for network access to browser.example.test',
        reason: `The agent's reason (its own words, not checked): “${reason}”`,
        images: 0,
        buttons: ['Approve for this conversation', 'Approve for 1 hour', 'Deny'],
      });
      await page.click('.message.approval button[data-decision=deny]');
      await page.waitForFunction(
        () => /Denied by ana \(web\)/.test(document.querySelector('.approval .outcome')?.textContent ?? ''),
        { timeout: 30_000 },
      );
      expect(await page.$$('.message.approval button')).toHaveLength(0);
      await page.waitForFunction(
        () =>
          [...document.querySelectorAll('.message.bot .body')].some((b) =>
            /denied by ana/.test(b.textContent ?? ''),
          ),
        { timeout: 30_000 },
      );
      expect(await page.title()).toBe('sandbot');
    } finally {
      await browser.close();
    }
  });
});
