import type { Redis } from 'ioredis';
import { AuditEvent } from '../../contracts/audit/events.js';
import { auditKeys } from '../../contracts/redis/keys.js';

export interface TailFilter {
  conversation?: string;
  kind?: string;
}

/**
 * Events as they are written, from the capped Redis stream every writer adds to, from now on.
 * `redis` is blocked while waiting: give it a connection of its own.
 */
export async function* liveEvents(
  redis: Redis,
  instance: string,
  filter: TailFilter,
  signal: AbortSignal,
): AsyncGenerator<AuditEvent> {
  const key = auditKeys(instance).stream;
  let last = '$';
  while (!signal.aborted) {
    const reply = (await redis.xread('COUNT', 500, 'BLOCK', 1000, 'STREAMS', key, last)) as
      | [string, [string, string[]][]][]
      | null;
    for (const [, entries] of reply ?? []) {
      for (const [id, fields] of entries) {
        last = id;
        const event = parseEntry(fields);
        if (event && matches(event, filter)) yield event;
      }
    }
  }
}

function parseEntry(fields: string[]): AuditEvent | undefined {
  const at = fields.indexOf('event');
  if (at === -1 || at % 2 !== 0) return undefined;
  try {
    const parsed = AuditEvent.safeParse(JSON.parse(fields[at + 1] ?? ''));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** A kind filter ending in "." or "*" matches a family: "file." or "file.*" → file.created, … */
export function matches(event: AuditEvent, filter: TailFilter): boolean {
  if (filter.conversation && event.conversation !== filter.conversation) return false;
  if (!filter.kind) return true;
  const family = filter.kind.replace(/\*$/, '');
  return family.endsWith('.') ? event.kind.startsWith(family) : event.kind === filter.kind;
}
