import { retryAfterSeconds, UNREADABLE_PREFIX } from './errors.js';

/**
 * The `fetch` handed to the ollama client. The client creates its own AbortController per stream and
 * takes no signal, so this binds ours (timeout, cancel) to every HTTP request it makes. It also fixes
 * two habits of the client that would otherwise leak onto the terminal:
 * - a non-JSON error body is printed with console.log (stdout) before it is thrown; we turn such a body
 *   into Ollama's own `{"error": …}` shape first;
 * - a stream line that is not JSON is skipped with console.warn; we turn it into an `{"error": …}` line,
 *   which the client raises, so a corrupt answer fails with words instead of silently losing text.
 */

/** Longest single stream line kept in memory; Ollama's chunks are a few hundred bytes. */
const MAX_LINE_CHARS = 8 * 1024 * 1024;

export function ollamaFetch(signal: AbortSignal): typeof fetch {
  return async (input, init) => {
    const signals = init?.signal ? [init.signal, signal] : [signal];
    const response = await fetch(input, { ...init, signal: AbortSignal.any(signals) });
    if (!response.ok) return jsonErrorResponse(response);
    const type = response.headers.get('content-type') ?? '';
    if (response.body && type.includes('ndjson')) {
      return new Response(response.body.pipeThrough(checkedLines()), {
        status: response.status,
        headers: response.headers,
      });
    }
    return response;
  };
}

async function jsonErrorResponse(response: Response): Promise<Response> {
  const type = response.headers.get('content-type') ?? '';
  // The client keeps only the body's words: a 429's retry-after is added to them, or it would be lost.
  const retry = response.status === 429 ? retryAfterSeconds(response.headers.get('retry-after')) : undefined;
  if (type.includes('application/json') && retry === undefined) return response;
  const text = (await response.text().catch(() => '')).trim().slice(0, 500);
  let error = text || `HTTP ${response.status} ${response.statusText}`.trim();
  if (type.includes('application/json')) error = jsonErrorWords(text) ?? error;
  if (retry !== undefined) error = `${error}, retry after ${retry} s`;
  return new Response(JSON.stringify({ error }), {
    status: response.status,
    statusText: response.statusText,
    headers: { 'content-type': 'application/json' },
  });
}

function jsonErrorWords(text: string): string | undefined {
  try {
    const value = JSON.parse(text) as { error?: unknown };
    return typeof value.error === 'string' ? value.error : undefined;
  } catch {
    return undefined;
  }
}

/** Re-emits each NDJSON line, replacing one that is not a JSON object with an error line. */
function checkedLines(): TransformStream<Uint8Array, Uint8Array> {
  const decoder = new TextDecoder();
  const encoder = new TextEncoder();
  let buffer = '';
  const emit = (line: string, controller: TransformStreamDefaultController<Uint8Array>) => {
    if (line.trim() === '') return;
    controller.enqueue(encoder.encode(`${checkLine(line)}\n`));
  };
  return new TransformStream({
    transform(chunk, controller) {
      buffer += decoder.decode(chunk, { stream: true });
      const lines = buffer.split('\n');
      buffer = lines.pop() ?? '';
      for (const line of lines) emit(line, controller);
      if (buffer.length > MAX_LINE_CHARS) {
        controller.enqueue(encoder.encode(`${errorLine('a stream line longer than 8 MiB')}\n`));
        controller.terminate();
      }
    },
    flush(controller) {
      emit(buffer + decoder.decode(), controller);
    },
  });
}

export function checkLine(line: string): string {
  try {
    const value: unknown = JSON.parse(line);
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) return line;
  } catch {
    // fall through
  }
  const shown = line.length > 200 ? `${line.slice(0, 200)}…` : line;
  return errorLine(`a line that is not a JSON object: ${JSON.stringify(shown)}`);
}

function errorLine(what: string): string {
  return JSON.stringify({ error: `${UNREADABLE_PREFIX}${what}` });
}
