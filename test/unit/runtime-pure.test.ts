import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseRuntimeArgs } from '../../sandbox/runtime/args.js';
import {
  boundHistory,
  clipArgs,
  clipMessage,
  messageBytes,
  userChatMessages,
} from '../../sandbox/runtime/history-bounds.js';
import { capText, completeUtf8Length, OutputCap } from '../../sandbox/runtime/output-cap.js';
import { confinePath, isInside } from '../../sandbox/runtime/paths.js';
import { countOccurrences } from '../../sandbox/runtime/tools/files.js';
import { describeCall } from '../../sandbox/runtime/tools/run-tool.js';
import type { ChatMessage } from '../../src/contracts/protocol/agent.js';

describe('OutputCap', () => {
  it('keeps everything that fits', () => {
    const cap = new OutputCap(100);
    cap.push('hello ');
    cap.push(Buffer.from('world'));
    expect(cap.text()).toBe('hello world');
    expect(cap.truncated).toBe(false);
  });

  it('keeps the beginning and the end within the byte limit, however much is pushed', () => {
    const cap = new OutputCap(200);
    cap.push('BEGIN');
    for (let i = 0; i < 10_000; i++) cap.push('x'.repeat(100));
    cap.push('END');
    const text = cap.text();
    expect(cap.truncated).toBe(true);
    expect(cap.totalBytes).toBe(1_000_008);
    expect(text.startsWith('BEGIN')).toBe(true);
    expect(text.endsWith('END')).toBe(true);
    expect(text).toMatch(/\[\.\.\. \d+ bytes omitted \.\.\.\]/);
    expect(Buffer.byteLength(text)).toBeLessThanOrEqual(200);
  });

  it('never splits a multi-byte character', () => {
    const { text, truncated } = capText('é'.repeat(500), 101);
    expect(truncated).toBe(true);
    expect(text).not.toContain('\uFFFD');
    expect(Buffer.byteLength(text)).toBeLessThanOrEqual(101);
    expect(completeUtf8Length(Buffer.from([0x61, 0xc3]))).toBe(1);
    expect(completeUtf8Length(Buffer.from([0x61, 0xc3, 0xa9]))).toBe(3);
    expect(completeUtf8Length(Buffer.from([0xe2, 0x82]))).toBe(0);
  });

  it('capText leaves short text alone', () => {
    expect(capText('abc', 3)).toEqual({ text: 'abc', truncated: false });
  });
});

describe('confinePath', () => {
  const ws = '/workspace';
  it('resolves relative paths and absolute paths inside the workspace', () => {
    expect(confinePath(ws, 'a/b.txt')).toEqual({ ok: true, path: '/workspace/a/b.txt' });
    expect(confinePath(ws, '/workspace/x')).toEqual({ ok: true, path: '/workspace/x' });
    expect(confinePath(ws, '.')).toEqual({ ok: true, path: '/workspace' });
    expect(confinePath(ws, 'a/../b')).toEqual({ ok: true, path: '/workspace/b' });
    expect(confinePath(ws, '..hidden')).toEqual({ ok: true, path: '/workspace/..hidden' });
  });

  it('refuses paths that leave the workspace', () => {
    for (const bad of ['../etc/passwd', '/etc/passwd', 'a/../../x', '/workspace2/x', '/', 'a\0b']) {
      const result = confinePath(ws, bad);
      expect(result.ok, bad).toBe(false);
    }
    const result = confinePath(ws, '../x');
    expect(!result.ok && result.error).toContain('outside the workspace');
  });

  it('isInside compares whole path segments', () => {
    expect(isInside('/w', '/w')).toBe(true);
    expect(isInside('/w', path.join('/w', 'a'))).toBe(true);
    expect(isInside('/w', '/wx')).toBe(false);
    expect(isInside('/w', '/')).toBe(false);
  });
});

const user = (content: string): ChatMessage => ({ role: 'user', content });
const assistant = (content: string, call?: string): ChatMessage => ({
  role: 'assistant',
  content,
  ...(call ? { tool_calls: [{ function: { name: 'bash', arguments: { command: call } } }] } : {}),
});
const tool = (content: string): ChatMessage => ({ role: 'tool', tool_name: 'bash', content });

describe('boundHistory', () => {
  it('keeps everything when it fits, minus system messages', () => {
    const all = [{ role: 'system' as const, content: 's' }, user('a'), assistant('b')];
    expect(boundHistory(all, { maxMessages: 10, maxBytes: 10_000 })).toEqual([user('a'), assistant('b')]);
  });

  it('keeps the newest messages and starts at a user message', () => {
    const all = [user('1'), assistant('2'), user('3'), assistant('', 'ls'), tool('out'), assistant('done')];
    const kept = boundHistory(all, { maxMessages: 4, maxBytes: 10_000 });
    expect(kept).toEqual([user('3'), assistant('', 'ls'), tool('out'), assistant('done')]);
    const fewer = boundHistory(all, { maxMessages: 3, maxBytes: 10_000 });
    // The latest user message is always kept; a tool result is never left without its call.
    expect(fewer).toEqual([user('3'), assistant('done')]);
  });

  it('respects the byte bound', () => {
    const all = Array.from({ length: 50 }, (_, i) => user(`message ${i} ${'x'.repeat(100)}`));
    const kept = boundHistory(all, { maxMessages: 1000, maxBytes: 1000 });
    const bytes = kept.reduce((sum, m) => sum + messageBytes(m) + 1, 0);
    expect(bytes).toBeLessThanOrEqual(1000);
    expect(kept.at(-1)).toEqual(all.at(-1));
    expect(kept.length).toBeGreaterThan(1);
  });

  it('always keeps the newest message and the task, even when they alone are too big', () => {
    const all = [user('old'), user('task'), assistant('', 'x'.repeat(500)), tool('y'.repeat(500))];
    expect(boundHistory(all, { maxMessages: 2, maxBytes: 100 })).toEqual([
      user('task'),
      tool('y'.repeat(500)),
    ]);
    expect(boundHistory([], { maxMessages: 2, maxBytes: 100 })).toEqual([]);
  });
});

describe('clipMessage and clipArgs', () => {
  it('shrinks content and long tool arguments of one huge message', () => {
    const huge: ChatMessage = {
      role: 'assistant',
      content: 'c'.repeat(100_000),
      tool_calls: [
        { function: { name: 'write_file', arguments: { path: 'a', content: 'z'.repeat(100_000) } } },
      ],
    };
    const clipped = clipMessage(huge, 8000);
    expect(messageBytes(clipped)).toBeLessThanOrEqual(8000);
    expect(clipped.tool_calls?.[0]?.function.arguments.path).toBe('a');
    expect(clipMessage(user('small'), 8000)).toEqual(user('small'));
  });

  it('clipArgs shortens long strings and omits large non-strings', () => {
    const args = clipArgs({ a: 'x'.repeat(5000), b: 1, c: { deep: 'y'.repeat(5000) } }, 200);
    expect(Buffer.byteLength(args.a as string)).toBeLessThanOrEqual(200);
    expect(args.b).toBe(1);
    expect(args.c).toBe('[omitted: too large]');
  });
});

describe('userChatMessages', () => {
  it('names the speakers only when several people spoke', () => {
    expect(userChatMessages([{ user: 'alice', text: 'hi' }])).toEqual([user('hi')]);
    expect(
      userChatMessages([
        { user: 'alice', text: 'hi' },
        { user: 'bob', text: 'yo' },
      ]),
    ).toEqual([user('alice: hi'), user('bob: yo')]);
  });
});

describe('describeCall', () => {
  it('is one short line', () => {
    expect(describeCall('bash', { command: 'ls -la' })).toBe('running bash: ls -la');
    expect(describeCall('read_file', { path: 'a.txt' })).toBe('running read_file: a.txt');
    expect(describeCall('nope', 42)).toBe('running nope');
    const long = describeCall('bash', { command: `echo a\n${'b'.repeat(1000)}` });
    expect(long.length).toBeLessThanOrEqual(200);
    expect(long).not.toContain('\n');
  });
});

describe('countOccurrences', () => {
  it('counts non-overlapping occurrences', () => {
    expect(countOccurrences('aaaa', 'aa')).toBe(2);
    expect(countOccurrences('abc', 'x')).toBe(0);
    expect(countOccurrences('a.b.c', '.')).toBe(2);
  });
});

describe('parseRuntimeArgs', () => {
  it('has container defaults and accepts directories and a line size', () => {
    expect(parseRuntimeArgs([])).toEqual({
      workspace: '/workspace',
      session: '/session',
      maxLineBytes: 1024 * 1024,
      reapStrays: false,
    });
    expect(parseRuntimeArgs(['--reap-strays']).reapStrays).toBe(true);
    const args = parseRuntimeArgs([
      '--workspace',
      '/tmp/w',
      '--session',
      '/tmp/s',
      '--max-line-bytes',
      '4096',
    ]);
    expect(args).toEqual({ workspace: '/tmp/w', session: '/tmp/s', maxLineBytes: 4096, reapStrays: false });
  });

  it('listens for the egress tunnel only when told a port', () => {
    expect(parseRuntimeArgs([]).egressPort).toBeUndefined();
    expect(parseRuntimeArgs(['--egress-port', '3128']).egressPort).toBe(3128);
    expect(() => parseRuntimeArgs(['--egress-port', '70000'])).toThrow(/--egress-port must be a port number/);
  });

  it('says what is wrong', () => {
    expect(() => parseRuntimeArgs(['--bogus'])).toThrow(/Usage/);
    expect(() => parseRuntimeArgs(['--max-line-bytes', '10'])).toThrow(/at least 1024/);
    expect(() => parseRuntimeArgs(['--max-line-bytes', 'lots'])).toThrow();
  });
});
