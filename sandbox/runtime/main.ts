import { WorkerToRuntime } from '../../src/contracts/protocol/agent.js';
import { LineDecoder } from '../../src/contracts/protocol/lines.js';
import { parseRuntimeArgs } from './args.js';
import { closeToOthers, dropPrivilege, type Privilege } from './privilege.js';
import { Runtime } from './runtime.js';
import { writeLine } from './stdout.js';
import { findShell } from './tools/bash.js';

/**
 * The agent runtime's entry point inside a sandbox: JSON lines from the worker on stdin, JSON lines to
 * it on stdout (in frames other writers cannot split: stdout.ts). Only protocol lines go to stdout;
 * diagnostics go to stderr.
 */
function main(): void {
  let args: ReturnType<typeof parseRuntimeArgs>;
  try {
    args = parseRuntimeArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`sandbot runtime: ${(err as Error).message}\n`);
    process.exit(2);
  }

  // Before anything else: a runtime started as root keeps root only to start processes as other uids.
  let privilege: Privilege | undefined;
  try {
    privilege = args.agentUid === undefined ? undefined : dropPrivilege(args.agentUid);
    if (privilege) closeToOthers([args.workspace, args.session]);
  } catch (err) {
    process.stderr.write(`sandbot runtime: cannot drop to uid ${args.agentUid}: ${(err as Error).message}\n`);
    process.exit(2);
  }
  const runtime = new Runtime({
    privilege,
    workspace: args.workspace,
    session: args.session,
    maxLineBytes: args.maxLineBytes,
    reapStrays: args.reapStrays,
    // Only in the sandbox (where strays are reaped too): elsewhere a waiting shell would outlive tests.
    readyShell: args.reapStrays,
    shell: findShell(),
    egressPort: args.egressPort,
    write: (message, frameKey) => {
      try {
        writeLine(message, frameKey);
      } catch {
        // The worker going away (EPIPE) leaves nobody to talk to.
        process.exit(0);
      }
    },
  });
  const decoder = new LineDecoder(WorkerToRuntime, args.maxLineBytes);

  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (chunk: string) => {
    for (const result of decoder.push(chunk)) {
      try {
        runtime.receive(result);
      } catch (err) {
        process.stderr.write(`sandbot runtime: unexpected error: ${(err as Error).stack ?? err}\n`);
      }
    }
  });
  process.stdin.on('end', () => {
    void runtime.shutdown().finally(() => {
      process.exitCode = 0;
      // Normally nothing is left and the process ends by itself; this only guards against a straggler.
      setTimeout(() => process.exit(0), 2000).unref();
    });
  });
  // A stopping container: take the running tool's process group down too (it is detached from ours).
  process.on('SIGTERM', () => {
    void runtime.shutdown().finally(() => process.exit(0));
  });
  runtime.start();
}

main();
