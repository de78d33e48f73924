import { type ChildProcess, spawn } from 'node:child_process';
import type { Config } from '../../src/contracts/config/schema.js';

/** The settings as environment variables, for a child process that parses them again. */
function configEnv(config: Config): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(config)) {
    if (value === undefined) continue;
    if (Array.isArray(value) && value.every((item) => typeof item === 'string')) env[name] = value.join(',');
    else if (typeof value !== 'object') env[name] = String(value);
    else if (!Array.isArray(value) || value.length > 0)
      throw new Error(`cannot pass ${name} to a worker process`);
  }
  return env;
}

/**
 * `sandbot worker` (or `gateway`) processes of the built CLI, for tests that kill them or measure them;
 * `killAll` ends the rest.
 */
export class WorkerProcesses {
  private readonly live = new Set<ChildProcess>();

  constructor(
    private readonly config: Config,
    /** Run the TypeScript sources through tsx instead of the built CLI (no build needed). */
    private readonly fromSource = false,
  ) {}

  spawn(command: 'worker' | 'gateway' = 'worker'): ChildProcess {
    const env = { ...(process.env as Record<string, string>), ...configEnv(this.config) };
    const entry = this.fromSource ? ['--import', 'tsx', 'src/cli/main.ts'] : ['dist/src/cli/main.js'];
    const child = spawn(process.execPath, [...entry, command], {
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-4000);
    });
    child.once('exit', (code, signal) => {
      this.live.delete(child);
      // A worker that fails by itself (not killed by the test) says why.
      if (code) console.error(`${command} exited ${code} ${signal}: ${stderr}`);
    });
    this.live.add(child);
    return child;
  }

  killAll(): void {
    for (const child of this.live) child.kill('SIGKILL');
  }
}
