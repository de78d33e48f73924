import { once } from 'node:events';
import type { ServerResponse } from 'node:http';
import { approvalCard } from '../../src/contracts/approvals/approval-card.js';
import type { WebStreamEntry } from './ports.js';

/**
 * One Server-Sent Event. JSON.stringify never emits a raw newline, so `data:` stays one line. An approval
 * event carries its card (title, the agent's reason marked as such, outcome, buttons), worded as on
 * every other platform, so the page only renders it.
 */
export function formatSseEvent(entry: WebStreamEntry): string {
  const { event } = entry;
  const data = event.type === 'approval' ? { ...event, card: approvalCard(event.approval) } : event;
  return `id: ${entry.id}\ndata: ${JSON.stringify(data)}\n\n`;
}

/** A comment line: ignored by EventSource, but keeps proxies from closing an idle stream. */
export function formatSseComment(text: string): string {
  return `: ${text.replace(/[\r\n]+/g, ' ')}\n\n`;
}

/** Tells EventSource how long to wait before it reconnects (ms). */
export function formatSseRetry(ms: number): string {
  return `retry: ${Math.max(0, Math.floor(ms))}\n\n`;
}

export interface SseOptions {
  heartbeatMs: number;
  /** Called when the event source fails (not when the client leaves); the client then reconnects. */
  onError: (error: unknown) => void;
}

/**
 * Streams `open(signal)`'s entries to an HTTP response as Server-Sent Events until the client leaves
 * (which aborts `signal`, so the subscriber closes its Redis connection) or the source fails.
 */
export async function pipeSse(
  res: ServerResponse,
  open: (signal: AbortSignal) => AsyncIterable<WebStreamEntry>,
  options: SseOptions,
): Promise<void> {
  const abort = new AbortController();
  const stop = () => abort.abort();
  res.on('close', stop);
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-store, no-transform',
    connection: 'keep-alive',
    'x-accel-buffering': 'no', // nginx: do not buffer the stream
  });
  res.write(formatSseRetry(3000) + formatSseComment('connected'));
  const heartbeat = setInterval(() => res.write(formatSseComment('heartbeat')), options.heartbeatMs);
  try {
    for await (const entry of open(abort.signal)) {
      if (!res.write(formatSseEvent(entry))) await once(res, 'drain', { signal: abort.signal });
    }
  } catch (error) {
    if (!abort.signal.aborted) options.onError(error);
  } finally {
    clearInterval(heartbeat);
    res.off('close', stop);
    abort.abort();
    res.end();
  }
}
