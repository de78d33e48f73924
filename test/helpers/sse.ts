import type { OutboundEvent } from '../../src/contracts/protocol/outbound.js';

/** A live reader of a conversation's Server-Sent Events, collecting every `data:` line as an event. */
export interface SseClient {
  events: OutboundEvent[];
  /** Resolves with the first event (at or after `from`) matching, or rejects after `timeoutMs`. */
  waitFor(predicate: (event: OutboundEvent) => boolean, timeoutMs?: number): Promise<OutboundEvent>;
  close(): void;
}

export async function openSse(url: string, headers: Record<string, string> = {}): Promise<SseClient> {
  const abort = new AbortController();
  const response = await fetch(url, {
    headers: { accept: 'text/event-stream', ...headers },
    signal: abort.signal,
  });
  if (!response.ok || !response.body) throw new Error(`SSE ${url} answered ${response.status}`);
  const events: OutboundEvent[] = [];
  const waiters = new Set<() => void>();
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  void (async () => {
    let buffer = '';
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buffer += value;
        let end = buffer.indexOf('\n\n');
        while (end !== -1) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          for (const line of block.split('\n')) {
            if (line.startsWith('data: ')) events.push(JSON.parse(line.slice(6)) as OutboundEvent);
          }
          end = buffer.indexOf('\n\n');
        }
        for (const wake of waiters) wake();
      }
    } catch {
      // aborted by close()
    }
  })();
  return {
    events,
    waitFor(predicate, timeoutMs = 60_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = events.find(predicate);
          if (!found) return;
          cleanup();
          resolve(found);
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(
            new Error(
              `no matching SSE event within ${timeoutMs} ms; got ${JSON.stringify(events).slice(0, 1500)}`,
            ),
          );
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    close: () => abort.abort(),
  };
}

export async function postMessage(
  baseUrl: string,
  conversation: string,
  text: string,
  user = 'tester',
  headers: Record<string, string> = {},
) {
  const response = await fetch(`${baseUrl}/api/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ conversation, user, text }),
  });
  if (response.status !== 202)
    throw new Error(`POST /api/messages answered ${response.status}: ${await response.text()}`);
  return (await response.json()) as { conversation: string; messageId: string };
}
