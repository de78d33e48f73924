import type { InboundMessage } from '../../contracts/protocol/inbound.js';
import type { Turn } from '../../shared/queue/conversation-store.js';

export type Segment =
  | { kind: 'chat'; turn: Turn }
  | { kind: 'reset'; turn: Turn }
  | { kind: 'done'; turn: Turn }
  | { kind: 'run'; turn: Turn; command: string };

/**
 * Splits a batch into what runs in order: consecutive chat messages make one model turn; a `reset`
 * or a `run` stands alone. Every segment after the first gets its own derived turn id, so each keeps
 * distinct, stable event ids across reruns. A `done` (closing the task) drops what came before it in
 * the batch: work nobody started on is not done after its task was closed.
 */
export function planSegments(turn: Turn): Segment[] {
  const groups: { kind: 'chat' | 'reset' | 'run' | 'done'; messages: InboundMessage[] }[] = [];
  const from = turn.messages.map((m) => m.command).lastIndexOf('done');
  for (const message of turn.messages.slice(Math.max(0, from))) {
    const kind = message.command ?? 'chat';
    const last = groups.at(-1);
    if (kind === 'chat' && last?.kind === 'chat') last.messages.push(message);
    else groups.push({ kind, messages: [message] });
  }
  return groups.map((group, index) => {
    const sub: Turn = {
      ...turn,
      turnId: index === 0 ? turn.turnId : `${turn.turnId}.${index}`,
      messages: group.messages,
    };
    if (group.kind === 'run') return { kind: 'run', turn: sub, command: group.messages[0]?.text ?? '' };
    return { kind: group.kind, turn: sub };
  });
}
