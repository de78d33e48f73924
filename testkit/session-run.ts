import { randomBytes } from 'node:crypto';
import type { SandboxSession } from '../sandbox/host/driver/types.js';

/**
 * Runs one shell command on an open sandbox session through the protocol (as a chat `/run` does):
 * its output, and the type of every line the session saw meanwhile.
 */
export function runOnSession(
  session: SandboxSession,
  command: string,
  limits = { toolTimeoutMs: 60_000, toolOutputBytes: 16_384 },
): Promise<{ output: string; seen: string[] }> {
  const seen: string[] = [];
  return new Promise((resolve) => {
    let output = '';
    const off = session.onMessage((line) => {
      if (!line.ok) return;
      seen.push(line.value.type);
      if (line.value.type === 'tool_finished') output = line.value.output;
      if (line.value.type === 'turn_done') {
        off();
        resolve({ output, seen });
      }
    });
    session.send({ type: 'run', turnId: `run-${randomBytes(4).toString('hex')}`, command, limits });
  });
}
