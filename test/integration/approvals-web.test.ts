import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDocker } from '../../sandbox/host/driver/docker-client.js';
import { webConversationId } from '../../src/contracts/conversation/id.js';
import { instanceKeys } from '../../src/contracts/redis/keys.js';
import { AuditJournal } from '../../src/shared/audit/journal.js';
import { parseEvents } from '../../src/shared/audit/summary.js';
import { ApprovalAllowances } from '../../src/shared/stores/approval-allowances.js';
import { ApprovalStore } from '../../src/shared/stores/approval-store.js';
import { NetworkPolicyStore } from '../../src/shared/stores/policy-store.js';
import { HostCallLedger, relayHostTool } from '../../src/worker/turn/host-tool-relay.js';
import { type OutsideHost, startOutsideHost } from '../../testkit/outside-host.js';
import { REDIS_URL, testInstance } from '../../testkit/redis.js';
import {
  APPROVALS_TOKEN,
  approvalScript,
  approvalsClient,
  ask,
  cardIn as card,
  replyIn as reply,
} from '../helpers/approvals.js';
import { type ScriptedStack, startScriptedStack, testConfig } from '../helpers/stack.js';

/**
 * Approvals of network access end to end through the web chat, on real parts (Redis, the worker, real
 * sandboxes and the egress proxy; only the model is scripted): the model's `request_access` call
 * becomes a card in the web event stream, the web route decides it (the API token makes an approver;
 * nobody else), once however many clicks, and the worker applies the outcome, edits the card and tells
 * the model who decided. The waiting turn holds no model call and no CPU: the other worker slot still
 * serves another chat. Skills, sub-agents and the page in a browser: approvals-kinds.test.ts.
 */

const OUTSIDE = '192.88.99.10';
const HOST = 'pkgs.example.test';
const docker = createDocker(undefined);
const config = testConfig(testInstance('approvals-web'), {
  SANDBOT_API_TOKEN: APPROVALS_TOKEN,
  SANDBOT_APPROVAL_TIMEOUT_SECONDS: '10',
  SANDBOT_WORKER_CONCURRENCY: '2',
  SANDBOT_EGRESS_PORT: '0',
  // Conversations `pre…` have a grant already, so their sandboxes start with the proxy.
  SANDBOT_NETWORK_RULES: 'web:pre*=other.example.test',
});
let outside: OutsideHost;
let stack: ScriptedStack;
const redis = new Redis(REDIS_URL);
const store = new ApprovalStore(redis, config.SANDBOT_INSTANCE);
const { events, send, decide } = approvalsClient(() => stack.url);

beforeAll(async () => {
  outside = await startOutsideHost(docker, {
    name: `sbx-apr-outside-${process.pid}`,
    subnet: '192.88.99.0/24', // not the host's own network (192.0.2.0/24 here), nor another test's
    address: OUTSIDE,
  });
  stack = await startScriptedStack(config, approvalScript, {
    lookup: async (host) =>
      host === HOST ? [{ address: OUTSIDE, family: 4 }] : Promise.reject(new Error('ENOTFOUND')),
  });
});

afterAll(async () => {
  await stack?.stop();
  await outside?.stop();
  redis.disconnect();
});

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

describe('approvals of network access through the web chat', () => {
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
      expect(toolResults('request_access').at(-1)).toContain(
        'it works at once; otherwise from your next turn',
      );
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

  it('works in the same turn in a sandbox that already has network access', async () => {
    const sse = await events('pre-net');
    try {
      const request = ask({ kind: 'network', host: `${HOST}:8080`, reason: 'one more host' });
      await send('pre-net', `${request}\nTHEN curl -s http://${HOST}:8080/same-turn`);
      const pending = await card(sse, 'pending');
      expect((await decide(pending.approval.id, 'approve')).status).toBe(200);
      expect(await reply(sse)).toContain('outside says hi to /same-turn');
    } finally {
      sse.close();
    }
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
});
