import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { findShell, runBash } from '../../sandbox/runtime/tools/bash.js';
import { ReadyShells } from '../../sandbox/runtime/tools/ready-shell.js';
import type { ToolContext } from '../../sandbox/runtime/tools/types.js';
import { eventually, isGone } from '../helpers/processes.js';

/** A bash started ahead of the next call must run a command exactly as a fresh `bash -c` would. */

const shell = findShell();
let root: string;
let workspace: string;
let shells: ReadyShells;
let ctx: ToolContext;
const savedLocale = { LANG: process.env.LANG, LC_ALL: process.env.LC_ALL, LC_CTYPE: process.env.LC_CTYPE };

beforeEach(() => {
  // As in the sandbox image: no locale (the ready shell counts the command in bytes).
  process.env.LANG = 'C';
  delete process.env.LC_ALL;
  delete process.env.LC_CTYPE;
  root = mkdtempSync(path.join(tmpdir(), 'sandbot-ready-shell-'));
  workspace = path.join(root, 'workspace');
  mkdirSync(workspace);
  shells = new ReadyShells();
  ctx = { workspace, timeoutMs: 10_000, outputBytes: 8192, signal: new AbortController().signal, shell };
});

afterEach(() => {
  shells.close();
  for (const [name, value] of Object.entries(savedLocale)) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
  rmSync(root, { recursive: true, force: true });
});

/** Runs the command in the waiting shell, checking that it was that shell which ran it. */
async function viaReadyShell(command: string, context: ToolContext = ctx) {
  shells.prepare(shell, workspace);
  const pid = shells.pid();
  expect(pid).toBeGreaterThan(0);
  const result = await runBash(`echo "pid:$$"; ${command}`, { ...context, shells });
  expect(result.output).toContain(`pid:${pid}`);
  return { ...result, output: result.output.replace(`pid:${pid}\n`, '') };
}

describe('the ready shell', () => {
  it('gives the same result as a fresh bash -c, command for command', async () => {
    const commands = [
      'true',
      'pwd; cat; echo err >&2; exit 3',
      'echo "$0 $# [$*]"; echo "$BASH_EXECUTION_STRING" | tail -n 1',
      'printf "%s|" héllo "a  b"; echo',
      'no-such-command-here',
      'cat <<EOF\nline $((1 + 1))\nEOF\necho after',
      'ls /proc/self/fd | sort -n | tr "\\n" " "',
      'x=1; f() { echo "in f $x"; }; f; return 2 2>&1; echo still',
      '',
    ];
    for (const command of commands) {
      const fresh = await runBash(`echo "pid:$$"; ${command}`, ctx);
      const ready = await viaReadyShell(command);
      expect({ command, ...ready }).toEqual({
        command,
        ...fresh,
        output: fresh.output.replace(/pid:\d+\n/, ''),
      });
    }
  });

  it('starts the next one once a call has finished, and keeps to its directory and shell', async () => {
    await viaReadyShell('true');
    await eventually(() => shells.pid() !== undefined, 'the next shell started');
    const other = path.join(root, 'other');
    mkdirSync(other);
    // Another directory: the waiting shell is not used (it would run in the wrong place).
    const elsewhere = await runBash('pwd', { ...ctx, workspace: other, shells });
    expect(elsewhere.output).toContain(other);
  });

  it('falls back to a fresh shell when the waiting one was killed, or for what it cannot take', async () => {
    shells.prepare(shell, workspace);
    const pid = shells.pid() as number;
    process.kill(pid, 'SIGKILL');
    await eventually(() => shells.pid() === undefined, 'the killed shell noticed');
    expect((await runBash('echo fresh', { ...ctx, shells })).output).toBe('exit code 0\nfresh\n');
    shells.prepare(shell, workspace);
    const big = `echo ${'x'.repeat(70_000)} | wc -c`;
    expect((await runBash(big, { ...ctx, shells })).output).toBe('exit code 0\n70001\n');
    const nul = await runBash('echo a\0b', { ...ctx, shells });
    expect(nul.ok).toBe(false);
  });

  it('kills a handed command and its children at the timeout, like a fresh one', async () => {
    const result = await viaReadyShell('sleep 100 & echo $! > child.pid; sleep 100', {
      ...ctx,
      timeoutMs: 1000,
    });
    expect(result.output).toContain('timed out after 1s');
    const child = Number(readFileSync(path.join(workspace, 'child.pid'), 'utf8'));
    await eventually(() => isGone(child), 'the background child killed');
  });

  it('is not used in a locale that counts characters, and close() ends the waiting one', async () => {
    process.env.LANG = 'C.UTF-8';
    shells.prepare(shell, workspace);
    expect(shells.pid()).toBeUndefined();
    process.env.LANG = 'C';
    shells.prepare(shell, workspace);
    const pid = shells.pid() as number;
    shells.close();
    await eventually(() => isGone(pid), 'the waiting shell killed');
    shells.prepare(shell, workspace);
    expect(shells.pid()).toBeUndefined();
  });

  it('discard() ends the waiting shell, and the next prepare starts a fresh one', async () => {
    shells.prepare(shell, workspace);
    const first = shells.pid() as number;
    expect(first).toBeGreaterThan(0);
    shells.discard();
    expect(shells.pid()).toBeUndefined();
    await eventually(() => isGone(first), 'the discarded shell killed');
    shells.prepare(shell, workspace);
    const second = shells.pid() as number;
    expect(second).toBeGreaterThan(0);
    expect(second).not.toBe(first);
  });
});
