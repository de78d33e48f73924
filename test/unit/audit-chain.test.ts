import { describe, expect, it } from 'vitest';
import type { AuditBody, AuditEvent } from '../../src/contracts/audit/events.js';
import { parseAuditInput } from '../../src/contracts/audit/events.js';
import { type ConversationId, conversationKey } from '../../src/contracts/conversation/id.js';
import { boundData } from '../../src/shared/audit/bound.js';
import { canonicalJson, GENESIS_HASH, hashOf, seal, verifyChain } from '../../src/shared/audit/chain.js';
import { describeActivity, summarizeEvents } from '../../src/shared/audit/summary.js';
import { toCsv } from '../../src/shared/audit/timeline.js';
import { diffWorkspace } from '../../src/worker/audit/workspace-diff.js';

const conversation = 'web:chain' as ConversationId;
const key = conversationKey(conversation);

function body(
  n: number,
  kind: AuditBody['kind'] = 'tool.call',
  data: Record<string, unknown> = {},
): AuditBody {
  return {
    id: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`,
    time: new Date(Date.UTC(2025, 0, 1, 0, 0, n)).toISOString(),
    conversation,
    turnId: `${conversation}#1-1`,
    actor: 'agent',
    kind,
    data: { name: 'bash', args: { command: `echo ${n}` }, reported: true, ...data },
  };
}

function chain(count: number): AuditEvent[] {
  const events: AuditEvent[] = [];
  let prev = GENESIS_HASH;
  for (let n = 1; n <= count; n++) {
    const event = seal(body(n), n, prev);
    prev = event.hash;
    events.push(event);
  }
  return events;
}

const fileOf = (events: unknown[]) => events.map((e) => `${JSON.stringify(e)}\n`).join('');

describe('the audit hash chain', () => {
  it('hashes canonical JSON: key order and whitespace do not matter, values do', () => {
    expect(canonicalJson({ b: 1, a: [{ d: 2, c: undefined }, 'x'] })).toBe('{"a":[{"d":2},"x"],"b":1}');
    expect(hashOf({ a: 1, b: 2 })).toBe(hashOf({ b: 2, a: 1 }));
    expect(hashOf({ a: 1, b: 2 })).not.toBe(hashOf({ a: 1, b: 3 }));
    expect(hashOf({ a: 1, hash: 'ignored' })).toBe(hashOf({ a: 1 }));
  });

  it('accepts an intact chain', () => {
    const events = chain(5);
    expect(verifyChain(fileOf(events), key)).toEqual({
      conversation,
      events: 5,
      lastSeq: 5,
      lastHash: events[4]?.hash,
    });
  });

  it('names an edited line, even when its JSON is reformatted rather than changed', () => {
    const events = chain(5);
    const lines = fileOf(events).split('\n');
    lines[2] = lines[2]!.replace('echo 3', 'echo 4');
    expect(verifyChain(lines.join('\n'), key).broken).toEqual({
      line: 3,
      seq: 3,
      problem: 'content does not match its hash (the event was edited)',
    });
    // Same content, keys in another order: still the same event.
    const reordered = fileOf(events).split('\n');
    const third = JSON.parse(reordered[2]!) as Record<string, unknown>;
    reordered[2] = JSON.stringify(Object.fromEntries(Object.entries(third).reverse()));
    expect(verifyChain(reordered.join('\n'), key).broken).toBeUndefined();
  });

  it('names the line after a deleted one, and an edit whose hash was recomputed', () => {
    const events = chain(5);
    const deleted = [...events.slice(0, 2), ...events.slice(3)];
    expect(verifyChain(fileOf(deleted), key).broken).toEqual({
      line: 3,
      seq: 4,
      problem: 'seq 3 missing (deleted events)',
    });
    const forged = structuredClone(events);
    forged[1]!.data.args = { command: 'rm -rf /' };
    forged[1]!.hash = hashOf(forged[1] as unknown as Record<string, unknown>);
    expect(verifyChain(fileOf(forged), key).broken).toMatchObject({ line: 3, seq: 3, problem: /prevHash/ });
  });

  it('names repeated, foreign, injected and incomplete lines', () => {
    const events = chain(3);
    expect(verifyChain(fileOf([...events, events[2]]), key).broken?.problem).toBe(
      'seq 3 again after 3 (repeated or reordered)',
    );
    expect(verifyChain(fileOf(events), 'someotherkey').broken?.problem).toMatch(/whose file is/);
    const injected = { ...events[1], extra: 'field' };
    expect(verifyChain(fileOf([events[0], injected, events[2]]), key).broken).toMatchObject({ line: 2 });
    expect(verifyChain(`${fileOf(events)}{"seq":4`, key).broken).toEqual({
      line: 4,
      problem: 'incomplete last line (no newline)',
    });
    expect(verifyChain(`${fileOf(events.slice(0, 1))}not json\n`, key).broken).toEqual({
      line: 2,
      problem: 'not JSON',
    });
  });
});

describe('audit inputs', () => {
  it('checks the envelope and each kind’s data', () => {
    const ok = parseAuditInput({
      conversation,
      actor: 'proxy',
      kind: 'net.request',
      data: { host: 'example.com', port: 443, allowed: false, reason: 'not granted', method: 'CONNECT' },
    });
    expect(ok).toMatchObject({ ok: true, value: { data: { method: 'CONNECT' } } });
    expect(
      parseAuditInput({ conversation, actor: 'root', kind: 'tripwire', data: { name: 'x' } }),
    ).toMatchObject({
      ok: false,
      error: expect.stringContaining('actor'),
    });
    expect(
      parseAuditInput({ conversation, actor: 'agent', kind: 'net.request', data: { host: 'x' } }),
    ).toMatchObject({
      ok: false,
      error: expect.stringContaining('net.request data: port'),
    });
    expect(parseAuditInput({ conversation, actor: 'agent', kind: 'nope', data: {} }).ok).toBe(false);
  });

  it('keeps an event within a line however large its data', () => {
    const bounded = boundData({
      output: 'x'.repeat(1_000_000),
      list: Array.from({ length: 5000 }, (_, i) => i),
    });
    expect(JSON.stringify(bounded).length).toBeLessThan(64 * 1024);
    expect(String(bounded.output)).toMatch(/more characters\]$/);
  });
});

describe('workspace diffs', () => {
  const snap = (
    entries: Record<string, { size: number; sha256?: string; mtimeMs?: number }>,
    truncated = false,
  ) => ({
    truncated,
    entries: Object.fromEntries(
      Object.entries(entries).map(([p, e]) => [p, { type: 'file' as const, mtimeMs: 1, ...e }]),
    ),
  });

  it('finds created, changed and deleted files, comparing unhashed ones by size and time', () => {
    const before = snap({
      '/workspace/a': { size: 1, sha256: 'a'.repeat(64) },
      '/workspace/big': { size: 9 },
      '/workspace/gone': { size: 2, sha256: 'b'.repeat(64) },
    });
    const after = snap({
      '/workspace/a': { size: 1, sha256: 'c'.repeat(64) },
      '/workspace/big': { size: 9, mtimeMs: 2 },
      '/workspace/new': { size: 3, sha256: 'd'.repeat(64) },
    });
    expect(diffWorkspace(before, after).map((c) => [c.kind, c.data.path])).toEqual([
      ['file.changed', '/workspace/a'],
      ['file.changed', '/workspace/big'],
      ['file.deleted', '/workspace/gone'],
      ['file.created', '/workspace/new'],
    ]);
    expect(diffWorkspace(before, before)).toEqual([]);
    // A snapshot cut short cannot tell a missing file from one past the limit.
    expect(diffWorkspace(before, { ...after, truncated: true }).map((c) => c.kind)).toEqual([
      'file.changed',
      'file.changed',
    ]);
  });
});

describe('activity summaries and exports', () => {
  it('sums up tools, files and network from the events', () => {
    const events = [
      seal(body(1), 1, GENESIS_HASH),
      seal(
        {
          ...body(2),
          kind: 'file.created',
          data: { path: '/workspace/x', size: 1, type: 'file', hashed: false },
        },
        2,
        '',
      ),
      seal(
        {
          ...body(3),
          actor: 'proxy',
          kind: 'net.request',
          data: { host: 'pypi.org', port: 443, allowed: true },
        },
        3,
        '',
      ),
      seal(
        {
          ...body(4),
          actor: 'proxy',
          kind: 'net.request',
          data: { host: 'evil.test', port: 80, allowed: false },
        },
        4,
        '',
      ),
      seal({ ...body(5), actor: 'worker:w-1', kind: 'turn.finished', data: { outcome: 'replied' } }, 5, ''),
    ];
    const summary = summarizeEvents(events);
    expect(summary).toMatchObject({
      turns: 1,
      lastTurn: { outcome: 'replied' },
      tools: { bash: 1 },
      files: { created: 1, recent: ['/workspace/x'] },
      network: { allowed: 1, refused: 1, hosts: ['evil.test', 'pypi.org'] },
    });
    expect(describeActivity(summary!)).toMatch(
      /1 turn \(last: replied .*tools: bash ×1; files: 1 created \(\/workspace\/x\); network: 1 allowed, 1 refused/,
    );
  });

  it('exports CSV with quoted cells', () => {
    const csv = toCsv(chain(1));
    const [header, row] = csv.split('\r\n');
    expect(header).toBe('seq,time,conversation,turnId,actor,kind,data,id,prevHash,hash');
    expect(row).toMatch(
      /^1,2025-01-01T00:00:01.000Z,web:chain,web:chain#1-1,agent,tool.call,"{""args"":{""command"":""echo 1""}/,
    );
  });
});
