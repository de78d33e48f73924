import { once } from 'node:events';
import type { ServerResponse } from 'node:http';
import type { Redis } from 'ioredis';
import type { ConversationId } from '../../contracts/conversation/id.js';
import { liveEvents } from '../../shared/audit/live-tail.js';
import type { AuditStorage } from '../../shared/audit/storage.js';
import { parseEvents } from '../../shared/audit/summary.js';
import { type EventView, eventView } from './timeline-view.js';

const HEARTBEAT_MS = 15_000;
/** Events caught up from the file on (re)connect at most. */
const CATCH_UP_BYTES = 1024 * 1024;

export function sseFrame(view: EventView): string {
  return `id: ${view.seq}\ndata: ${JSON.stringify(view)}\n\n`;
}

/**
 * Streams a conversation's audit events as they are written (the audit's live Redis stream, on a
 * connection of its own), first catching up from its file on what came after `after` (the last one the
 * page shows), until the browser leaves.
 */
export async function streamConversation(
  res: ServerResponse,
  source: { redis: Redis; instance: string; journal: AuditStorage },
  conversation: ConversationId,
  after: number,
): Promise<void> {
  const abort = new AbortController();
  const stop = () => abort.abort();
  res.on('close', stop);
  // Its own connection (XREAD BLOCK holds it), which waits to be connected (the gateway's may fail fast).
  const reader = source.redis.duplicate({ enableOfflineQueue: true, maxRetriesPerRequest: null });
  reader.on('error', () => undefined);
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-store, no-transform',
    'x-accel-buffering': 'no',
    'x-content-type-options': 'nosniff',
  });
  res.write('retry: 2000\n\n: connected\n\n');
  const heartbeat = setInterval(() => res.write(': heartbeat\n\n'), HEARTBEAT_MS);
  let last = after;
  const send = async (view: EventView) => {
    if (view.seq <= last) return;
    last = view.seq;
    if (!res.write(sseFrame(view))) await once(res, 'drain', { signal: abort.signal });
  };
  try {
    const live = liveEvents(reader, source.instance, { conversation }, abort.signal);
    // The stream's first read starts now ("from here on"); then the file says what came before it.
    const first = live.next();
    first.catch(() => undefined); // awaited below; meanwhile a failure is not "unhandled"
    const written = parseEvents(await source.journal.tail(conversation, CATCH_UP_BYTES));
    for (const event of written) await send(eventView(event));
    for (let next = await first; !next.done; next = await live.next()) await send(eventView(next.value));
  } catch {
    // The browser left or Redis failed: EventSource reconnects with the last id it saw.
  } finally {
    clearInterval(heartbeat);
    res.off('close', stop);
    abort.abort();
    reader.disconnect();
    res.end();
  }
}
