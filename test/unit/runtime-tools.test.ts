import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { resolveInWorkspace } from '../../sandbox/runtime/paths.js';
import { runBash } from '../../sandbox/runtime/tools/bash.js';
import { runTool } from '../../sandbox/runtime/tools/run-tool.js';
import type { ToolContext } from '../../sandbox/runtime/tools/types.js';
import { eventually, isGone } from '../helpers/processes.js';

let root: string;
let workspace: string;
let outside: string;
let ctx: ToolContext;

beforeEach(() => {
  root = mkdtempSync(path.join(tmpdir(), 'sandbot-tools-'));
  workspace = path.join(root, 'workspace');
  outside = path.join(root, 'outside');
  mkdirSync(workspace);
  mkdirSync(outside);
  writeFileSync(path.join(outside, 'secret.txt'), 'top secret');
  ctx = { workspace, timeoutMs: 10_000, outputBytes: 4096, signal: new AbortController().signal };
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

describe('file tools', () => {
  it('write_file creates parent directories; read_file reads it back; list_files lists it', async () => {
    const written = await runTool('write_file', { path: 'deep/dir/a.txt', content: 'hello' }, ctx);
    expect(written.ok).toBe(true);
    expect(readFileSync(path.join(workspace, 'deep/dir/a.txt'), 'utf8')).toBe('hello');
    expect(await runTool('read_file', { path: 'deep/dir/a.txt' }, ctx)).toEqual({
      ok: true,
      output: 'hello',
      truncated: false,
    });
    writeFileSync(path.join(workspace, 'b.txt'), '12345');
    const listed = await runTool('list_files', {}, ctx);
    expect(listed.output).toBe('b.txt  5 bytes\ndeep/');
  });

  it('edit_file replaces exactly one occurrence, literally, and says how many there are otherwise', async () => {
    writeFileSync(path.join(workspace, 'f.txt'), 'one two two');
    const missing = await runTool('edit_file', { path: 'f.txt', old_text: 'three', new_text: 'x' }, ctx);
    expect(missing).toMatchObject({ ok: false });
    expect(missing.output).toContain('does not occur');
    const twice = await runTool('edit_file', { path: 'f.txt', old_text: 'two', new_text: 'x' }, ctx);
    expect(twice.ok).toBe(false);
    expect(twice.output).toContain('occurs 2 times');
    const once = await runTool('edit_file', { path: 'f.txt', old_text: 'one', new_text: '$&1' }, ctx);
    expect(once.ok).toBe(true);
    expect(readFileSync(path.join(workspace, 'f.txt'), 'utf8')).toBe('$&1 two two');
  });

  it('read_file of a large file returns only its beginning, marked as truncated', async () => {
    writeFileSync(path.join(workspace, 'big.txt'), 'a'.repeat(100_000));
    const result = await runTool('read_file', { path: 'big.txt' }, ctx);
    expect(result.truncated).toBe(true);
    expect(Buffer.byteLength(result.output)).toBeLessThanOrEqual(4096);
    expect(result.output).toContain('file is 100000 bytes');
  });

  it('refuses paths outside the workspace, also through symlinks', async () => {
    symlinkSync(outside, path.join(workspace, 'link-dir'));
    symlinkSync(path.join(outside, 'secret.txt'), path.join(workspace, 'link-file'));
    symlinkSync(path.join(outside, 'nothing-yet'), path.join(workspace, 'dangling'));
    const attempts: [string, Record<string, unknown>][] = [
      ['read_file', { path: '../outside/secret.txt' }],
      ['read_file', { path: path.join(outside, 'secret.txt') }],
      ['read_file', { path: 'link-file' }],
      ['read_file', { path: 'link-dir/secret.txt' }],
      ['write_file', { path: 'link-dir/new.txt', content: 'x' }],
      ['write_file', { path: 'link-dir/sub/new.txt', content: 'x' }],
      ['write_file', { path: 'dangling', content: 'x' }],
      ['edit_file', { path: 'link-file', old_text: 'top', new_text: 'x' }],
      ['list_files', { path: 'link-dir' }],
      ['list_files', { path: '..' }],
    ];
    for (const [name, args] of attempts) {
      const result = await runTool(name, args, ctx);
      expect(result.ok, `${name} ${JSON.stringify(args)}`).toBe(false);
      expect(result.output).toMatch(/outside the workspace|leads nowhere/);
    }
    expect(readFileSync(path.join(outside, 'secret.txt'), 'utf8')).toBe('top secret');
    expect(existsSync(path.join(outside, 'new.txt'))).toBe(false);
    expect(existsSync(path.join(outside, 'nothing-yet'))).toBe(false);
    // A symlink that stays inside is fine.
    writeFileSync(path.join(workspace, 'real.txt'), 'inside');
    symlinkSync('real.txt', path.join(workspace, 'alias.txt'));
    expect((await runTool('read_file', { path: 'alias.txt' }, ctx)).output).toBe('inside');
    expect(resolveInWorkspace(workspace, 'alias.txt')).toEqual({
      ok: true,
      path: path.join(workspace, 'real.txt'),
    });
  });

  it('answers unknown tools and bad arguments with words for the model', async () => {
    const unknown = await runTool('rm_rf', {}, ctx);
    expect(unknown.ok).toBe(false);
    expect(unknown.output).toContain('unknown tool "rm_rf"');
    expect(unknown.output).toContain('bash');
    const bad = await runTool('write_file', { path: 42 }, ctx);
    expect(bad.ok).toBe(false);
    expect(bad.output).toMatch(/invalid arguments for write_file: path: .*content/s);
  });
});

describe('bash tool', () => {
  it('runs in the workspace with stdin from /dev/null and reports the exit code', async () => {
    const result = await runBash('pwd; cat; echo err >&2; exit 3', ctx);
    expect(result.ok).toBe(false);
    expect(result.output).toContain('exit code 3');
    expect(result.output).toContain(workspace);
    expect(result.output).toContain('err');
    const fine = await runTool('bash', { command: 'echo hi' }, ctx);
    expect(fine).toEqual({ ok: true, output: 'exit code 0\nhi\n', truncated: false });
  });

  it('falls back to sh when told to', async () => {
    const result = await runBash('echo via sh', { ...ctx, shell: { file: 'sh', args: ['-c'] } });
    expect(result.output).toContain('via sh');
  });

  it('kills the command and its children at the timeout', async () => {
    const result = await runBash('sleep 100 & echo $! > child.pid; echo $$ > shell.pid; sleep 100', {
      ...ctx,
      timeoutMs: 1000,
    });
    expect(result.ok).toBe(false);
    expect(result.output).toContain('timed out after 1s');
    for (const file of ['child.pid', 'shell.pid']) {
      const pid = Number(readFileSync(path.join(workspace, file), 'utf8'));
      await eventually(() => isGone(pid), `${file} process ${pid} killed`);
    }
  });

  it('caps output while it streams', async () => {
    const result = await runBash('head -c 5000000 /dev/zero | tr "\\0" x; echo; echo LAST', ctx);
    expect(result.truncated).toBe(true);
    expect(Buffer.byteLength(result.output)).toBeLessThanOrEqual(4096);
    expect(result.output).toContain('exit code 0');
    expect(result.output).toContain('bytes omitted');
    expect(result.output.trimEnd().endsWith('LAST')).toBe(true);
  });

  it('stops at once when the turn is cancelled', async () => {
    const controller = new AbortController();
    const running = runBash('echo $$ > shell.pid; sleep 100', { ...ctx, signal: controller.signal });
    await eventually(() => existsSync(path.join(workspace, 'shell.pid')), 'shell started');
    controller.abort();
    const result = await running;
    expect(result.output).toContain('cancelled');
    const pid = Number(readFileSync(path.join(workspace, 'shell.pid'), 'utf8'));
    await eventually(() => isGone(pid), 'shell killed');
  });
});
