import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import { OutputCap } from '../output-cap.js';
import type { Privilege } from '../privilege.js';
import type { ToolContext, ToolResult } from './types.js';

/** How long to wait for the pipes to close once the shell is gone before giving up on them. */
const PIPE_GRACE_MS = 500;
/** Room kept in the output budget for the status line. */
const STATUS_RESERVE = 100;

/** The shell to run commands with: bash when installed, otherwise sh (e.g. a busybox image). */
export function findShell(searchPath = process.env.PATH ?? '/usr/bin:/bin'): {
  file: string;
  args: string[];
} {
  for (const dir of searchPath.split(path.delimiter)) {
    if (!dir) continue;
    try {
      accessSync(path.join(dir, 'bash'), constants.X_OK);
      return { file: path.join(dir, 'bash'), args: ['-c'] };
    } catch {
      // not here; keep looking
    }
  }
  return { file: 'sh', args: ['-c'] };
}

/**
 * Runs one shell command in its own process group with stdin from /dev/null and stdout+stderr piped
 * into a bounded buffer (never inherited: nothing a tool prints can reach the runtime's stdout). The
 * whole group is SIGKILLed on timeout, on cancel, and when the shell exits, so no leftover process
 * lingers between tool calls or holds the pipes open.
 */
export function runBash(command: string, ctx: ToolContext): Promise<ToolResult> {
  const shell = ctx.shell ?? findShell();
  const cap = new OutputCap(Math.max(16, ctx.outputBytes - STATUS_RESERVE));
  return new Promise((resolve) => {
    let child: ChildProcess;
    try {
      child =
        (ctx.runAs ? undefined : ctx.shells?.take(shell, ctx.workspace, command)) ??
        start(shell, command, ctx);
    } catch (err) {
      resolve({
        ok: false,
        output: `could not start ${shell.file}: ${(err as Error).message}`,
        truncated: false,
      });
      return;
    }
    let status: string | undefined;
    let ok = false;
    let settled = false;
    const killAll = () => {
      if (child.pid !== undefined) killGroup(child.pid, ctx.privilege);
    };
    const finish = () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(grace);
      ctx.signal.removeEventListener('abort', onAbort);
      child.stdout?.destroy();
      child.stderr?.destroy();
      // The next call's shell starts once this result is on its way (setImmediate: after the runtime
      // has sent it), while the model works out what to do next.
      if (ctx.shells) setImmediate(() => ctx.shells?.prepare(shell, ctx.workspace));
      const output = cap.text();
      resolve({
        ok,
        output: `${status ?? 'finished'}\n${output === '' ? '(no output)' : output}`,
        truncated: cap.truncated,
      });
    };
    let grace: NodeJS.Timeout | undefined;
    const end = (why: string, success: boolean) => {
      if (status !== undefined) return;
      status = why;
      ok = success;
      killAll();
      grace = setTimeout(finish, PIPE_GRACE_MS);
    };
    const onAbort = () => end('cancelled', false);
    const timer = setTimeout(
      () =>
        end(
          `timed out after ${formatSeconds(ctx.timeoutMs)}; the command and its children were killed`,
          false,
        ),
      Math.min(ctx.timeoutMs, 2_147_483_647),
    );
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    if (ctx.signal.aborted) onAbort();
    child.stdout?.on('data', (chunk: Buffer) => cap.push(chunk));
    child.stderr?.on('data', (chunk: Buffer) => cap.push(chunk));
    child.on('error', (err) => {
      end(`could not run ${shell.file}: ${err.message}`, false);
      finish();
    });
    child.on('exit', (code, signal) => {
      end(code !== null ? `exit code ${code}` : `killed by signal ${signal}`, code === 0);
    });
    child.on('close', finish);
  });
}

/** Starts the shell: as the agent, or as the call's own uid (runAs), when the runtime can choose. */
function start(shell: { file: string; args: string[] }, command: string, ctx: ToolContext): ChildProcess {
  const options = {
    cwd: ctx.runAs?.cwd ?? ctx.workspace,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'] as ['ignore', 'pipe', 'pipe'],
    ...(ctx.runAs ? { env: { ...process.env, ...ctx.runAs.env } } : {}),
  };
  const privilege = ctx.privilege;
  if (!privilege) return spawn(shell.file, [...shell.args, command], options);
  const via = privilege.runAs(ctx.runAs?.uid ?? privilege.agentUid, options.cwd);
  return privilege.asRoot(() =>
    spawn(via.file, [...via.args, shell.file, ...shell.args, command], { ...options, cwd: '/' }),
  );
}

/** SIGKILLs a process group (as root when the runtime can: the group may be a skill's uid). */
export function killGroup(pid: number, privilege?: Privilege): void {
  const kill = () => {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // the group is already gone
    }
  };
  if (privilege) privilege.asRoot(kill);
  else kill();
}

function formatSeconds(ms: number): string {
  const seconds = ms / 1000;
  return `${Number.isInteger(seconds) ? seconds : seconds.toFixed(1)}s`;
}
