import type { AuditEvent } from '../../contracts/audit/events.js';
import type { ConversationId } from '../../contracts/conversation/id.js';
import type { Logger } from '../../contracts/log/logger.js';
import type { AuditRecorder } from '../../shared/audit/audit-log.js';
import type { Turn } from '../../shared/queue/conversation-store.js';

/**
 * A turn taken over from a worker that stopped mid-way is run again from its start. Tool calls that
 * worker had started may have had effects (a file written, a request sent), so the model is told which,
 * and the audit records them as interrupted. The decisions are pure; `takeOver` reads and records.
 */

export interface StartedCall {
  name: string;
  args: Record<string, unknown>;
}

/** What is read of an audit event here (written or still queued: the same for both). */
export type TurnEvent = Pick<AuditEvent, 'id' | 'kind' | 'turnId' | 'data'>;

/** The turn's calls that started but never finished: `tool.started` without a later `tool.call` of that name. */
export function interruptedCalls(events: readonly TurnEvent[], turnId: string): StartedCall[] {
  const open: StartedCall[] = [];
  const seen = new Set<string>();
  for (const event of events) {
    // An event being written may be read both in the file and in the queue.
    if (seen.has(event.id)) continue;
    seen.add(event.id);
    if (event.turnId !== turnId) continue;
    const name = String(event.data.name ?? '');
    const args = (event.data.args ?? {}) as Record<string, unknown>;
    if (event.kind === 'tool.started') open.push({ name, args });
    if (event.kind === 'tool.call') {
      const at = open.findIndex((call) => call.name === name);
      if (at !== -1) open.splice(at, 1);
    }
  }
  return open;
}

/** Longest rendering of one call's arguments in the note. */
const ARGS_CHARS = 300;

/** The words the model reads first in the rerun turn (nothing when no call had started). */
export function takeoverNote(calls: readonly StartedCall[]): string | undefined {
  if (calls.length === 0) return undefined;
  const lines = calls.map((call, i) => {
    const args = JSON.stringify(call.args);
    return `${i + 1}. ${call.name} ${args.length > ARGS_CHARS ? `${args.slice(0, ARGS_CHARS - 1)}…` : args}`;
  });
  return [
    '[sandbot: this turn was interrupted (the worker running it stopped) and runs again from its start.',
    'These tool calls had started before and may already have had effects:',
    ...lines,
    'Check what they did (files, state) before repeating any of them.]',
  ].join('\n');
}

/** The turn with the note put before its first message's text. */
export function withTakeoverNote(turn: Turn, note: string | undefined): Turn {
  const [first, ...rest] = turn.messages;
  if (!note || !first) return turn;
  return { ...turn, messages: [{ ...first, text: `${note}\n\n${first.text}` }, ...rest] };
}

export interface TakeoverDeps {
  logger: Logger;
  audit?: AuditRecorder;
  /** A conversation's audit events (on disk, then still queued). */
  readAudit?: (conversation: ConversationId) => Promise<TurnEvent[]>;
}

/**
 * A turn another worker started and never finished: its started tool calls go to the audit as
 * interrupted, and the model reads which they were before the turn runs again.
 */
export async function takeOver(deps: TakeoverDeps, actor: `worker:${string}`, turn: Turn): Promise<Turn> {
  const { conversation, turnId } = turn;
  deps.logger.warn({ conversation, turnId, from: turn.takenOverFrom }, 'turn taken over');
  const events = await deps.readAudit?.(conversation).catch((error) => {
    deps.logger.warn({ err: error, conversation }, 'audit not readable: the takeover note is left out');
    return [];
  });
  const calls = interruptedCalls(events ?? [], turnId);
  for (const call of calls) {
    await deps.audit?.record({
      conversation,
      turnId,
      actor,
      kind: 'tool.call',
      data: { name: call.name, args: call.args, reported: false, interrupted: true },
    });
  }
  return withTakeoverNote(turn, takeoverNote(calls));
}
