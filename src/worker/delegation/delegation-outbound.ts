import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { ConversationId } from '../../contracts/conversation/id.js';
import { FileRef, type ReplyRoute } from '../../contracts/protocol/inbound.js';
import type { OutboundEvent } from '../../contracts/protocol/outbound.js';
import { delegationResultKey } from '../../contracts/redis/keys.js';
import { subAgentLabel } from '../../contracts/tasks/task.js';

/**
 * A sub-agent has no thread of its own: its result goes back to the agent that delegated (through
 * Redis, whichever worker runs it), and its progress shows in that agent's thread, marked with its name.
 */

/** What a sub-agent's turn ended with, as the delegating agent's worker reads it. */
export const DelegationResult = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('reply'), text: z.string(), files: z.array(FileRef) }),
  z.object({ kind: z.literal('error'), message: z.string() }),
]);
export type DelegationResult = z.infer<typeof DelegationResult>;

const RESULT_TTL_SECONDS = 86_400;

/** Route fields that name a thread; anything else (a message to react on, an interaction) is dropped. */
const THREAD_FIELDS = ['team', 'channel', 'thread_ts', 'channelId', 'guildId'];

/** Where a sub-agent's progress goes: its parent's thread, without reactions or command responses. */
export function subAgentRoute(route: ReplyRoute): ReplyRoute {
  return Object.fromEntries(Object.entries(route).filter(([key]) => THREAD_FIELDS.includes(key)));
}

/** The result a sub-agent's final event carries, or undefined for progress. */
export function resultOf(event: OutboundEvent): DelegationResult | undefined {
  if (event.type === 'error') return { kind: 'error', message: event.message };
  if (event.type !== 'reply') return undefined;
  if (event.id.endsWith(':stopped')) return { kind: 'error', message: event.text };
  return { kind: 'reply', text: event.text, files: event.files ?? [] };
}

/** The event as the parent's thread shows it: progress marked with the sub-agent's name, a one-line end. */
export function threadEvent(event: OutboundEvent, label: string): OutboundEvent {
  switch (event.type) {
    case 'progress':
      return {
        ...event,
        text: event.id.endsWith(':progress:start')
          ? `🤖 sub-agent ${label} is working…`
          : `${label} › ${event.text}`,
      };
    case 'reply':
      return { ...event, text: `🤖 sub-agent ${label} finished.`, files: [] };
    case 'error':
      return { ...event, message: `sub-agent ${label} failed: ${event.message}` };
    case 'thread_start':
      return event; // a schedule's, never a sub-agent's
    case 'approval':
      return event; // a sub-agent's request is decided in its parent's thread, as it is
  }
}

/** Wraps the worker's publish: a sub-agent's result is stored for its parent first, then shown. */
export function subAgentOutbound(
  redis: Redis,
  instance: string,
  publish: (event: OutboundEvent) => Promise<void>,
): (event: OutboundEvent) => Promise<void> {
  return async (event) => {
    const label = subAgentLabel(event.conversation);
    if (!label) return publish(event);
    const result = resultOf(event);
    if (result) {
      const key = delegationResultKey(instance, event.conversation);
      await redis.set(key, JSON.stringify(result), 'EX', RESULT_TTL_SECONDS);
    }
    await publish(threadEvent(event, label));
  };
}

/** The stored result of a sub-agent, or undefined while it has none (unreadable counts as an error). */
export async function readDelegationResult(
  redis: Redis,
  instance: string,
  child: ConversationId,
): Promise<DelegationResult | undefined> {
  const raw = await redis.get(delegationResultKey(instance, child));
  if (raw === null) return undefined;
  try {
    const parsed = DelegationResult.safeParse(JSON.parse(raw));
    if (parsed.success) return parsed.data;
  } catch {
    // fall through
  }
  return { kind: 'error', message: 'the sub-agent’s result could not be read' };
}
