import { describe, expect, it, vi } from 'vitest';
import type { Approval } from '../../src/contracts/approvals/approval.js';
import { webConversationId } from '../../src/contracts/conversation/id.js';
import { childConversationId } from '../../src/contracts/tasks/task.js';
import {
  activeAllowances,
  allowedGrants,
  extraSubAgents,
} from '../../src/shared/stores/approval-allowances.js';
import {
  accessResult,
  checkAccessRequest,
  checkHost,
  waitSeconds,
} from '../../src/worker/approvals/access-request.js';
import { type AccessRequestDeps, AccessRequests } from '../../src/worker/approvals/access-requests.js';
import { applyApproval, HOUR_MS } from '../../src/worker/approvals/approval-apply.js';
import type { HostCall, HostTools } from '../../src/worker/turn/host-tool-relay.js';
import { hostToolSet } from '../../src/worker/turn/host-tool-set.js';

const approval = (over: Partial<Approval>): Approval => ({
  id: 'apr_abcdefghijkl',
  conversation: webConversationId('chat'),
  platform: 'web',
  route: {},
  kind: 'network',
  target: 'pypi.org',
  reason: 'to install requests',
  turnId: 't1',
  requestedAt: '2026-12-07T07:00:00.000Z',
  expiresAtMs: 0,
  status: 'pending',
  ...over,
});

describe('request_access arguments', () => {
  it('takes a host as an admin grant would, refusing private addresses, localhost and too-wide wildcards', () => {
    expect(checkAccessRequest({ kind: 'network', host: 'PyPI.org', reason: 'pip' })).toEqual({
      kind: 'network',
      target: 'pypi.org',
      reason: 'pip',
    });
    expect(checkHost('api.example.com:8443')).toEqual({ grant: 'api.example.com:8443' });
    expect(checkHost('*.example.com')).toEqual({ grant: '*.example.com' });
    expect(checkHost('*.com')).toMatchObject({ error: expect.stringContaining('public suffix "com"') });
    expect(checkHost('10.1.2.3')).toMatchObject({ error: expect.stringContaining('private') });
    expect(checkHost('169.254.169.254')).toMatchObject({ error: expect.stringContaining('metadata') });
    expect(checkHost('localhost')).toMatchObject({ error: expect.stringContaining('never granted') });
    expect(checkHost('https://pypi.org/simple')).toMatchObject({ error: expect.stringContaining('cannot') });
    expect(checkAccessRequest({ kind: 'network', reason: 'x' })).toEqual({
      error: 'kind "network" needs "host": e.g. "pypi.org"',
    });
  });

  it('needs a skill name for a skill, a count of 1 to 10 for sub-agents, and a reason always', () => {
    expect(checkAccessRequest({ kind: 'skill', skill: 'pdf-tools', reason: 'read the pdf' })).toMatchObject({
      kind: 'skill',
      target: 'pdf-tools',
    });
    expect(checkAccessRequest({ kind: 'skill', reason: 'x' })).toHaveProperty('error');
    expect(checkAccessRequest({ kind: 'delegate', count: 2, reason: 'x' })).toMatchObject({ target: '2' });
    expect(checkAccessRequest({ kind: 'delegate', reason: 'x' })).toMatchObject({ target: '1' });
    expect(checkAccessRequest({ kind: 'delegate', count: 11, reason: 'x' })).toHaveProperty('error');
    expect(checkAccessRequest({ kind: 'network', host: 'pypi.org' })).toMatchObject({
      error: expect.stringContaining('reason'),
    });
    expect(checkAccessRequest({ kind: 'root', reason: 'x' })).toMatchObject({
      error: expect.stringContaining('kind'),
    });
  });
});

describe('the wait', () => {
  it('is the approval timeout, cut to end before the turn does, with time left for the model', () => {
    const base = { timeoutSeconds: 900, turnStartedMs: 0, turnSeconds: 600 };
    expect(waitSeconds({ ...base, now: 0 })).toBe(570);
    expect(waitSeconds({ ...base, timeoutSeconds: 60, now: 0 })).toBe(60);
    expect(waitSeconds({ ...base, now: 560_000 })).toBe(10);
    expect(waitSeconds({ ...base, now: 600_000 })).toBe(0);
  });
});

describe('the tool result', () => {
  it('says who decided, for how long, and what now holds', () => {
    const approved = approval({
      status: 'approved',
      scope: 'conversation',
      decidedBy: 'admin:web-api',
      decidedByName: 'ana (web)',
    });
    expect(accessResult(approved, { ok: true, text: 'pypi.org is granted' })).toEqual({
      ok: true,
      output:
        'request_access (network pypi.org) approved by ana (web) (admin:web-api) for this conversation: pypi.org is granted',
    });
    expect(accessResult({ ...approved, scope: 'hour' }).output).toContain('for 1 hour');
    expect(accessResult(approval({ status: 'denied', decidedBy: 'user:slack:U1' }))).toEqual({
      ok: false,
      output: 'request_access (network pypi.org) denied by user:slack:U1: do without it',
    });
    expect(
      accessResult(approval({ status: 'expired', note: 'Expired without a decision: denied' })).output,
    ).toBe('request_access (network pypi.org) expired without a decision: denied; do without it');
    expect(
      accessResult(approval({ status: 'expired', note: 'the turn ended before a decision' })).output,
    ).toContain('(the turn ended before a decision)');
  });
});

describe('allowances from approvals', () => {
  it('hold until they lapse; conversation-long ones never do', () => {
    const entry = (kind: string, target: string, id: string) =>
      JSON.stringify({ kind, target, approval: id });
    const pairs = [
      entry('network', 'old.example.com', 'a1'),
      '1000',
      entry('network', 'pypi.org', 'a2'),
      '5000',
      entry('delegate', '2', 'a3'),
      'inf',
      entry('delegate', '1', 'a4'),
      '5000',
      entry('network', '*.com', 'a5'),
      '5000',
      'not json',
      '5000',
    ];
    const active = activeAllowances(pairs, 2000);
    expect(active.map((a) => a.approval)).toEqual(['a2', 'a3', 'a4', 'a5']);
    // A grant the schema refuses (too wide) is never handed to the proxy.
    expect(allowedGrants(active)).toEqual(['pypi.org']);
    expect(extraSubAgents(active)).toBe(3);
    expect(extraSubAgents(activeAllowances(pairs, 6000))).toBe(2);
  });

  it('are where an approval goes: one hour lapses, the conversation scope is an admin grant', async () => {
    const added: { target: string; until?: number }[] = [];
    const allowed: string[][] = [];
    const deps = {
      network: {
        allow: async (_c: string, grants: string[]) => {
          allowed.push(grants);
          return grants;
        },
      },
      allowances: {
        add: async (_c: string, e: { target: string }, until?: number) => {
          added.push({ target: e.target, ...(until ? { until } : {}) });
        },
      },
    };
    const decided = approval({ status: 'approved', decidedBy: 'user:slack:U1' });
    const hour = await applyApproval(deps, { ...decided, scope: 'hour' }, 1000);
    expect(hour.text).toContain('it works at once; otherwise from your next turn');
    expect(added).toEqual([{ target: 'pypi.org', until: 1000 + HOUR_MS }]);
    await applyApproval(deps, { ...decided, scope: 'conversation' }, 1000);
    expect(allowed).toEqual([['pypi.org']]);
    const delegate = await applyApproval(deps, {
      ...decided,
      kind: 'delegate',
      target: '2',
      scope: 'conversation',
    });
    expect(delegate.text).toBe('you may start 2 more sub-agent(s) than the limit');
    expect(added.at(-1)).toEqual({ target: '2' });
    const skill = await applyApproval(deps, {
      ...decided,
      kind: 'skill',
      target: 'pdf',
      scope: 'conversation',
    });
    expect(skill).toEqual({ ok: false, text: 'but this worker has no skills folder: nothing was enabled' });
  });
});

describe('host tools together', () => {
  it('offers each tool once and sends a call to the tool that owns its name', async () => {
    const ran: string[] = [];
    const tool = (name: string): HostTools => ({
      offered: async () => [{ type: 'function', function: { name, description: name, parameters: {} } }],
      run: async (call) => {
        ran.push(`${name}:${call.name}`);
        return { ok: true, output: name };
      },
    });
    const delegate = tool('delegate');
    const set = hostToolSet({ delegate, request_access: tool('request_access') });
    const offered = await set.offered({
      turnId: 't',
      conversation: webConversationId('x'),
      fromSeq: 0,
      toSeq: 0,
      messages: [],
    });
    expect(offered.map((t) => t.function.name)).toEqual(['delegate', 'request_access']);
    const call = { name: 'request_access', args: {} } as unknown as HostCall;
    expect(await set.run(call)).toEqual({ ok: true, output: 'request_access' });
    expect(ran).toEqual(['request_access:request_access']);
    const alone = hostToolSet({ delegate });
    expect(await alone.run(call)).toEqual({ ok: false, output: 'request_access is not available here' });
  });
});

describe('request_access before any card', () => {
  // Nothing here may reach the store: a refusal posts no card and creates no request.
  const untouchable = new Proxy(
    {},
    {
      get: () => {
        throw new Error('the store was used');
      },
    },
  );
  const tools = (turnSeconds: number) =>
    new AccessRequests({
      store: untouchable,
      redis: untouchable,
      publish: async () => {
        throw new Error('a card was posted');
      },
      ownerOf: async () => undefined,
      apply: { network: untouchable, allowances: untouchable },
      actor: () => 'worker:w1',
      logger: untouchable,
      settings: { timeoutSeconds: 900, turnSeconds },
    } as unknown as AccessRequestDeps);
  const turn = (conversation = webConversationId('chat')) => ({
    turnId: 't1',
    conversation,
    fromSeq: 0,
    toSeq: 0,
    messages: [],
  });
  const call = (conversation?: ReturnType<typeof webConversationId>) =>
    ({
      turn: turn(conversation),
      name: 'request_access',
      args: { kind: 'network', host: 'pypi.org', reason: 'pip' },
      signal: new AbortController().signal,
    }) as HostCall;

  it('is not offered to sub-agents, and refuses them in words if they call it anyway', async () => {
    const child = childConversationId(webConversationId('chat'), 1);
    if (!child) throw new Error('no child id');
    expect(await tools(600).offered(turn(child))).toEqual([]);
    expect((await tools(600).run(call(child))).output).toBe(
      'request_access refused: a sub-agent cannot ask people: tell the agent that started you what you need',
    );
  });

  it('refuses when the turn has no time left to wait, and what can never be granted', async () => {
    const late = tools(600);
    vi.useFakeTimers({ now: 1_000_000 });
    try {
      expect((await late.offered(turn())).map((t) => t.function.name)).toEqual(['request_access']);
      // 580 s into a 600 s turn: less than the margin the model needs to answer after the outcome.
      vi.setSystemTime(1_000_000 + 580_000);
      expect((await late.run(call())).output).toBe(
        'request_access refused: this turn has no time left to wait for a person: ask again early in the next turn',
      );
    } finally {
      vi.useRealTimers();
    }
    const wide = { ...call(), args: { kind: 'network', host: '*.co.uk', reason: 'x' } } as HostCall;
    expect((await tools(600).run(wide)).output).toMatch(
      /^request_access refused: "\*\.co\.uk" cannot be granted/,
    );
    const skill = { ...call(), args: { kind: 'skill', skill: 'pdf', reason: 'x' } } as HostCall;
    expect((await tools(600).run(skill)).output).toBe(
      'request_access refused: skill pdf cannot be enabled: this worker has no skills folder',
    );
  });
});
