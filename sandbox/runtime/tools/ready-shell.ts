import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import type { Writable } from 'node:stream';
import type { Privilege } from '../privilege.js';

type StdioPipes = ['ignore', 'pipe', 'pipe', 'pipe'];

/**
 * What the waiting bash runs: it reads the command's length and then the command from fd 3, closes
 * fd 3 and evaluates the command. The command lands in BASH_EXECUTION_STRING, where `bash -c` keeps its
 * command too, so nothing else of the shell differs from `bash -c` but a syntax error's prefix
 * ("bash: eval: line 1" instead of "bash: -c: line 1") and `$_` at the very start. `read -N` reads the
 * fd in blocks (one byte at a time for a delimiter would cost ≈1 µs a byte). A runtime that dies before
 * the whole command is in leaves the read short, and the shell exits without running anything.
 */
const WAITER =
  'IFS= read -r BASH_EXECUTION_STRING <&3 && ' +
  'IFS= read -r -N "$BASH_EXECUTION_STRING" BASH_EXECUTION_STRING <&3 || exit 70; ' +
  'exec 3<&-; eval "$BASH_EXECUTION_STRING"';

/** Longer commands go to a fresh `bash -c` (the ready shell's read of them would gain nothing). */
const MAX_HANDED_BYTES = 64 * 1024;

interface Waiting {
  child: ChildProcess;
  file: string;
  cwd: string;
  gone: boolean;
}

/**
 * Keeps one bash started ahead of the next bash tool call, blocked reading its command. Starting a
 * process costs a fork and an exec (≈2.5 ms from the runtime's node process on a small VM, most of a
 * `true` call); handing a command to a waiting shell costs a write. The shell is started between calls
 * (while the model thinks), in its own process group like a fresh one, with the same cwd, environment
 * and pipes, so the caller treats it exactly as a spawned `bash -c`.
 */
export class ReadyShells {
  private waiting: Waiting | undefined;
  private closed = false;

  /** With a privilege, the shell starts as the agent's uid alone (privilege.ts). */
  constructor(private readonly privilege?: Privilege) {}

  /** The waiting shell's pid, if one waits. */
  pid(): number | undefined {
    const waiting = this.waiting;
    return waiting && !waiting.gone ? waiting.child.pid : undefined;
  }

  /** Starts a shell for the next call unless one is waiting; for bash only (`sh` lacks `read -N`). */
  prepare(shell: { file: string; args: string[] }, cwd: string): void {
    if (this.closed || !usable(shell) || (this.waiting && !this.waiting.gone)) return;
    let child: ChildProcess;
    const args = ['--noprofile', '--norc', '-c', WAITER];
    const options = { cwd, detached: true, stdio: ['ignore', 'pipe', 'pipe', 'pipe'] as StdioPipes };
    const privilege = this.privilege;
    try {
      if (privilege) {
        const via = privilege.runAs(privilege.agentUid, cwd);
        child = privilege.asRoot(() =>
          spawn(via.file, [...via.args, shell.file, ...args], { ...options, cwd: '/' }),
        );
      } else child = spawn(shell.file, args, options);
    } catch {
      return; // the call will spawn its own shell and report why that fails
    }
    const waiting: Waiting = { child, file: shell.file, cwd, gone: false };
    const gone = () => {
      waiting.gone = true;
      if (this.waiting === waiting) this.waiting = undefined;
    };
    child.on('error', gone);
    child.on('exit', gone);
    // A shell killed while waiting makes the write fail; the caller then sees its exit like any other.
    (child.stdio[3] as Writable | null)?.on('error', () => undefined);
    this.waiting = waiting;
  }

  /**
   * Hands `command` to the waiting shell and returns it, now running the command; undefined when none
   * waits for this shell and directory, or the command cannot be handed over exactly.
   */
  take(shell: { file: string; args: string[] }, cwd: string, command: string): ChildProcess | undefined {
    const waiting = this.waiting;
    if (!waiting || waiting.gone || waiting.file !== shell.file || waiting.cwd !== cwd) return undefined;
    const bytes = Buffer.byteLength(command);
    if (!usable(shell) || bytes > MAX_HANDED_BYTES || command.includes('\0')) return undefined;
    this.waiting = undefined;
    (waiting.child.stdio[3] as Writable).end(`${bytes}\n${command}`);
    return waiting.child;
  }

  /** Kills the waiting shell, if any, and starts no more (the runtime is shutting down). */
  close(): void {
    this.closed = true;
    this.discard();
  }

  /**
   * Kills the waiting shell, if any (a later `prepare` starts a fresh one). At a turn's end: the agent's
   * commands run as the same uid as the waiting shell, so they could have taken it over (ptrace, its
   * /proc/<pid>/mem); a shell that may be running the agent's code is not spared.
   */
  discard(): void {
    const waiting = this.waiting;
    this.waiting = undefined;
    if (waiting && !waiting.gone && waiting.child.pid !== undefined) {
      const pid = waiting.child.pid;
      const kill = () => {
        try {
          process.kill(-pid, 'SIGKILL');
        } catch {
          // already gone
        }
      };
      if (this.privilege) this.privilege.asRoot(kill);
      else kill();
    }
  }
}

/**
 * bash with `-c`, in a byte-per-character locale: `read -N` counts characters, and the length sent is
 * in bytes. (The sandbox image sets no locale; elsewhere the call simply spawns its own shell.)
 */
function usable(shell: { file: string; args: string[] }): boolean {
  const locale = process.env.LC_ALL || process.env.LC_CTYPE || process.env.LANG || 'C';
  return (
    path.basename(shell.file) === 'bash' &&
    shell.args.length === 1 &&
    shell.args[0] === '-c' &&
    (locale === 'C' || locale === 'POSIX')
  );
}
