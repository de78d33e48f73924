import { describe, expect, it } from 'vitest';
import { ConversationId } from '../../src/contracts/conversation/id.js';
import { isGranted } from '../../src/contracts/policy/network-policy.js';
import type { OutboundEvent } from '../../src/contracts/protocol/outbound.js';
import { resultOf, subAgentRoute, threadEvent } from '../../src/worker/delegation/delegation-outbound.js';
import {
  covers,
  type DelegationLimits,
  handedOverPaths,
  narrowGrants,
  refusal,
  subAgentBrief,
  workspacePath,
} from '../../src/worker/delegation/delegation-policy.js';
import { canonicalJson, HostCallLedger } from '../../src/worker/turn/host-tool-relay.js';

const limits: DelegationLimits = { maxDepth: 1, maxFanout: 2, maxSandboxes: 3, concurrency: 4, maxLive: 50 };
const state = { depth: 0, children: 0, treeSandboxes: 0, waitingParents: 0, parentWaiting: false };

describe('delegation limits', () => {
  it('allows a first sub-agent and refuses past depth, fan-out and sandboxes per task, naming the setting', () => {
    expect(refusal(state, limits)).toBeUndefined();
    expect(refusal({ ...state, depth: 1 }, limits)).toMatch(
      /nest 1 deep at most \(SANDBOT_DELEGATE_MAX_DEPTH\)/,
    );
    expect(refusal(state, { ...limits, maxDepth: 0 })).toMatch(/turned off/);
    expect(refusal({ ...state, children: 2 }, limits)).toMatch(/SANDBOT_DELEGATE_MAX_FANOUT/);
    expect(refusal({ ...state, treeSandboxes: 3 }, limits)).toMatch(/SANDBOT_DELEGATE_MAX_SANDBOXES/);
  });

  it('always leaves one worker slot free for sub-agents to run in', () => {
    expect(refusal({ ...state, waitingParents: 2 }, limits)).toBeUndefined();
    expect(refusal({ ...state, waitingParents: 3 }, limits)).toMatch(/no worker slot/);
    // A parent already waiting holds its slot already: another sub-agent of it costs no more.
    expect(refusal({ ...state, waitingParents: 3, parentWaiting: true }, limits)).toBeUndefined();
    expect(refusal(state, { ...limits, concurrency: 1 })).toMatch(/no worker slot/);
  });
});

describe('what may be handed over', () => {
  it('takes files within /workspace only', () => {
    expect(workspacePath('notes/a.txt')).toEqual({ path: 'notes/a.txt' });
    expect(workspacePath('/workspace/./a.txt')).toEqual({ path: 'a.txt' });
    expect(workspacePath('/etc/passwd')).toMatchObject({
      error: expect.stringContaining('only files in /workspace'),
    });
    expect(workspacePath('../other/x')).toMatchObject({ error: expect.stringContaining('".."') });
    expect(workspacePath('a/../../x')).toMatchObject({ error: expect.stringContaining('".."') });
    expect(workspacePath('dir/')).toMatchObject({ error: expect.stringContaining('not a directory') });
    expect(workspacePath('.')).toMatchObject({ error: expect.any(String) });
  });

  it('hands over workspace files only, each under its own name', () => {
    expect(handedOverPaths([])).toEqual({ paths: [] });
    expect(handedOverPaths(['/workspace/a.txt', 'notes/b.txt'])).toEqual({ paths: ['a.txt', 'notes/b.txt'] });
    expect(handedOverPaths(['a.txt', '/etc/passwd', '../x'])).toMatchObject({
      error: expect.stringContaining('/etc/passwd: only files in /workspace'),
    });
    expect(handedOverPaths(['a/x.txt', 'b/x.txt'])).toEqual({ error: 'two of the files have the same name' });
  });

  it('gives a sub-agent its parent’s network or less, never more', () => {
    const parent = ['pypi.org', '*.github.com', 'api.example.test:443'];
    expect(narrowGrants(parent, undefined)).toEqual({ grants: parent });
    expect(narrowGrants(parent, [])).toEqual({ grants: [] });
    expect(
      narrowGrants(parent, ['pypi.org', 'api.github.com', '*.x.github.com', 'api.example.test:443']),
    ).toEqual({
      grants: ['pypi.org', 'api.github.com', '*.x.github.com', 'api.example.test:443'],
    });
    expect(narrowGrants(parent, ['pypi.org', 'evil.test'])).toEqual({
      error:
        'a sub-agent cannot reach more than you: you have pypi.org, *.github.com, api.example.test:443, not evil.test',
    });
    expect(narrowGrants(parent, ['github.com'])).toMatchObject({
      error: expect.stringContaining('not github.com'),
    });
    expect(narrowGrants(parent, ['api.example.test'])).toMatchObject({ error: expect.any(String) });
    expect(narrowGrants([], ['pypi.org'])).toMatchObject({
      error: expect.stringContaining('you have no network'),
    });
    expect(narrowGrants(parent, ['http://x'])).toMatchObject({
      error: expect.stringContaining('not a host name'),
    });
  });

  it('agrees with the proxy: whatever a narrower grant allows, the parent’s allows too', () => {
    const pairs: [string, string][] = [
      ['*.github.com', 'api.github.com'],
      ['*.github.com', '*.raw.github.com'],
      ['pypi.org', 'pypi.org:443'],
    ];
    for (const [outer, inner] of pairs) {
      expect(covers(outer, inner)).toBe(true);
      for (const host of ['api.github.com', 'a.raw.github.com', 'pypi.org']) {
        if (isGranted([inner], host, 443)) expect(isGranted([outer], host, 443)).toBe(true);
      }
    }
    expect(covers('pypi.org:443', 'pypi.org')).toBe(false);
  });

  it('tells the sub-agent what it was handed', () => {
    expect(subAgentBrief('sub-1', 'count the words', ['a.txt'])).toBe(
      'You are sub-agent sub-1: another agent handed you this task.\nFiles handed to you are in /workspace/inbox: a.txt.\nPut files the other agent should get in /workspace/outbox. Answer with your result.\n\ncount the words',
    );
  });
});

describe('host calls', () => {
  it('carries out only calls the brokered model made, each once, whatever the key order', () => {
    const ledger = new HostCallLedger();
    ledger.noteAnswer({
      role: 'assistant',
      content: '',
      tool_calls: [
        { function: { name: 'delegate', arguments: { task: 'x', files: ['a'] } } },
        { function: { name: 'bash', arguments: { command: 'ls' } } },
      ],
    });
    expect(ledger.take('delegate', { task: 'forged' })).toBe(false);
    expect(ledger.take('bash', { command: 'ls' })).toBe(false);
    expect(ledger.take('delegate', { files: ['a'], task: 'x' })).toBe(true);
    expect(ledger.take('delegate', { task: 'x', files: ['a'] })).toBe(false);
    expect(canonicalJson({ b: [2, { d: 1, c: 0 }], a: null })).toBe('{"a":null,"b":[2,{"c":0,"d":1}]}');
  });
});

describe('a sub-agent’s events', () => {
  const child = ConversationId.parse('slack:T1:C2:1700000000.000100:sub-1');
  const base = { conversation: child, platform: 'slack' as const, route: {}, turnId: 'x#1-1' };
  const event = (e: Partial<OutboundEvent> & Pick<OutboundEvent, 'type' | 'id'>) =>
    ({ ...base, ...e }) as OutboundEvent;

  it('show in the parent’s thread marked with its name, and carry its result', () => {
    const start = event({ type: 'progress', id: 'x#1-1:progress:start', text: 'working…' });
    expect(threadEvent(start, 'sub-1')).toMatchObject({ text: '🤖 sub-agent sub-1 is working…' });
    const step = event({ type: 'progress', id: 'x#1-1:progress:tool:1', text: 'bash: ls' });
    expect(threadEvent(step, 'sub-1')).toMatchObject({ text: 'sub-1 › bash: ls' });
    const files = [{ name: 'r.txt', size: 1, blobKey: 'k' }];
    const reply = event({ type: 'reply', id: 'x#1-1:reply', text: 'the answer', files });
    expect(threadEvent(reply, 'sub-1')).toMatchObject({ text: '🤖 sub-agent sub-1 finished.', files: [] });
    expect(resultOf(reply)).toEqual({ kind: 'reply', text: 'the answer', files });
    expect(resultOf(step)).toBeUndefined();
    const stopped = event({ type: 'reply', id: 'x#1-1:stopped', text: 'Stopped.' });
    expect(resultOf(stopped)).toEqual({ kind: 'error', message: 'Stopped.' });
    const error = event({ type: 'error', id: 'x#1-1:error', message: 'boom' });
    expect(threadEvent(error, 'sub-1')).toMatchObject({ message: 'sub-agent sub-1 failed: boom' });
  });

  it('go to the thread without reactions or a command’s response', () => {
    expect(subAgentRoute({ team: 'T', channel: 'C', thread_ts: '1.2', ts: '1.3', user: 'U' })).toEqual({
      team: 'T',
      channel: 'C',
      thread_ts: '1.2',
    });
    expect(
      subAgentRoute({
        channelId: '1',
        guildId: '2',
        interactionToken: 't',
        applicationId: '3',
        interactionExpiresAt: 4,
      }),
    ).toEqual({ channelId: '1', guildId: '2' });
  });
});
