/**
 * Reply events of one web conversation, as they arrive on its event stream (GET …/events, SSE): what
 * a web chat user sees. `next()` resolves on the next reply event after it is called.
 */
export async function replyStream(url: string, conversation: string, signal: AbortSignal) {
  const response = await fetch(`${url}/api/conversations/${encodeURIComponent(conversation)}/events`, {
    signal,
  });
  if (!response.ok) throw new Error(`bench: the event stream of ${conversation} answered ${response.status}`);
  const reader = (response.body as ReadableStream<Uint8Array>).getReader();
  const waiting: Array<() => void> = [];
  let count = 0;
  void (async () => {
    const decoder = new TextDecoder();
    let buffered = '';
    for (;;) {
      const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
      if (done) return;
      buffered += decoder.decode(value, { stream: true });
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) {
        if (line.startsWith('data:') && /"type":"reply"/.test(line)) {
          count += 1;
          waiting.shift()?.();
        }
      }
    }
  })();
  return { next: () => new Promise<void>((done) => waiting.push(done)), seen: () => count };
}
