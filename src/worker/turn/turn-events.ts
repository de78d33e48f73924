import type { FileRef } from '../../contracts/protocol/inbound.js';
import type { OutboundEvent } from '../../contracts/protocol/outbound.js';
import type { Turn } from '../../shared/queue/conversation-store.js';

/**
 * Outbound events of a turn. Ids derive from the turn id only, so a turn rerun after a worker died
 * emits the same ids and the user sees each event once.
 */
function base(turn: Turn, suffix: string) {
  const last = turn.messages.at(-1);
  return {
    id: `${turn.turnId}:${suffix}`,
    conversation: turn.conversation,
    platform: last?.platform ?? 'web',
    route: last?.route ?? {},
    turnId: turn.turnId,
  };
}

export const progressEvent = (turn: Turn, step: string, text: string): OutboundEvent => ({
  ...base(turn, `progress:${step}`),
  type: 'progress',
  text,
});

export const replyEvent = (
  turn: Turn,
  text: string,
  files: FileRef[] = [],
  step = 'reply',
): OutboundEvent => ({
  ...base(turn, step),
  type: 'reply',
  text,
  files,
});

export const errorEvent = (turn: Turn, message: string): OutboundEvent => ({
  ...base(turn, 'error'),
  type: 'error',
  message,
});

/** One line for the progress message, e.g. "bash: ls -la". */
export function describeToolStep(name: string, args: Record<string, unknown>, max = 160): string {
  const main = args.command ?? args.path ?? args.task ?? '';
  const detail = typeof main === 'string' ? main.replace(/\s+/g, ' ').trim() : '';
  const text = detail ? `${name}: ${detail}` : name;
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
