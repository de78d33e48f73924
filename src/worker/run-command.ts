import { randomUUID } from 'node:crypto';
import type { Turn } from '../shared/queue/conversation-store.js';
import { silentTrail, type TurnTrail } from './audit/turn-trail.js';
import { stopNotice, stopReasonOf } from './turn/stop-reason.js';
import { errorEvent, replyEvent } from './turn/turn-events.js';
import type { TurnOutcome, TurnRunnerDeps } from './turn/turn-runner.js';

/**
 * Runs a chat `/run` command: one shell command in the conversation's sandbox, without the model.
 * The output shown is the sandbox's own (that is what was asked for), fenced as code.
 */
export async function runCommand(
  deps: TurnRunnerDeps,
  turn: Turn,
  command: string,
  signals: { abandon: AbortSignal; stop: AbortSignal },
): Promise<TurnOutcome> {
  const trail = deps.observe?.(turn, 'run') ?? silentTrail;
  trail.started();
  const outcome = await runCommandIn(
    { ...deps, publish: trail.publishing(deps.publish) },
    turn,
    command,
    signals,
    trail,
  );
  await trail.finished(outcome);
  return outcome;
}

async function runCommandIn(
  deps: TurnRunnerDeps,
  turn: Turn,
  command: string,
  signals: { abandon: AbortSignal; stop: AbortSignal },
  trail: TurnTrail,
): Promise<TurnOutcome> {
  const runId = `${turn.turnId}@${randomUUID().slice(0, 8)}`;
  let session: Awaited<ReturnType<TurnRunnerDeps['driver']['open']>>;
  try {
    session = await deps.driver.open(turn.conversation, {
      network: await deps.networkFor?.(turn.conversation),
    });
  } catch (error) {
    await deps.publish(errorEvent(turn, `Your sandbox could not be started: ${(error as Error).message}`));
    return 'failed';
  }
  await trail.workspaceBefore();
  const toolSeconds = deps.config.SANDBOX_TOOL_TIMEOUT_SECONDS;
  const result = await new Promise<{ ok: boolean; output: string; truncated: boolean } | string>(
    (resolve) => {
      const cleanups: (() => void)[] = [];
      let output: { ok: boolean; output: string; truncated: boolean } | undefined;
      const done = (value: typeof output | string) => {
        for (const cleanup of cleanups) cleanup();
        resolve(value ?? 'The command ended without a result.');
      };
      const timer = setTimeout(
        () => done(`The command did not finish within ${toolSeconds + 10} s.`),
        (toolSeconds + 10) * 1000,
      );
      cleanups.push(() => clearTimeout(timer));
      for (const signal of [signals.abandon, signals.stop]) {
        const onAbort = () =>
          done(signals.stop.aborted ? stopNotice(stopReasonOf(signals.stop)) : 'Stopped.');
        signal.addEventListener('abort', onAbort, { once: true });
        cleanups.push(() => signal.removeEventListener('abort', onAbort));
      }
      cleanups.push(
        session.onClose((reason) => done(`Your sandbox stopped during the command (${reason}).`)),
      );
      cleanups.push(
        session.onMessage((line) => {
          if (!line.ok || !('turnId' in line.value) || line.value.turnId !== runId) return;
          if (line.value.type === 'tool_finished') output = line.value;
          if (line.value.type === 'turn_done') done(output);
        }),
      );
      try {
        session.send({
          type: 'run',
          turnId: runId,
          command,
          limits: {
            toolTimeoutMs: toolSeconds * 1000,
            toolOutputBytes: deps.config.SANDBOX_TOOL_OUTPUT_BYTES,
          },
        });
      } catch (error) {
        done(`Your sandbox could not take the command: ${(error as Error).message}`);
      }
    },
  );
  await session.close().catch(() => undefined);
  trail.commandFinished(command, typeof result === 'string' ? undefined : result);
  // The workspace's diff is recorded after the answer goes out (trail.finished): never before it.
  if (signals.abandon.aborted) return 'abandoned';
  if (signals.stop.aborted && stopReasonOf(signals.stop).kind === 'kill') {
    await deps.publish(errorEvent(turn, stopNotice(stopReasonOf(signals.stop))));
    return 'killed';
  }
  if (typeof result === 'string') {
    await deps.publish(errorEvent(turn, result));
    return 'failed';
  }
  const fenced = `\`\`\`\n${result.output.trimEnd().replaceAll('```', '`\u200b``') || '(no output)'}\n\`\`\`${result.truncated ? '\n(output truncated)' : ''}`;
  await deps.publish(replyEvent(turn, `$ ${command}\n${fenced}`));
  return result.ok ? 'replied' : 'failed';
}
