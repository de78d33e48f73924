/**
 * What can go wrong when the worker talks to the model server, in words an operator can act on.
 * `classifyOllamaError` (and `classifyOpenAIError`, providers/openai-errors.ts) is a pure function of
 * the thrown error (plus where we were calling), so the wording is unit-tested without a server.
 */

export type ModelBrokerErrorKind =
  | 'unreachable'
  | 'model_missing'
  | 'timeout'
  | 'cancelled'
  | 'bad_response'
  | 'server_error'
  /** The server wants credentials it was not given, or refuses the ones it was (HTTP 401/403). */
  | 'unauthorized'
  /** The server asks us to slow down (HTTP 429); the words carry its retry-after when it sent one. */
  | 'rate_limited';

export class ModelBrokerError extends Error {
  override readonly name = 'ModelBrokerError';
  constructor(
    readonly kind: ModelBrokerErrorKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface CallContext {
  /** The Ollama base URL, e.g. http://127.0.0.1:11434 */
  host: string;
  model?: string;
  timeoutMs: number;
}

/** Words for the socket-level codes Node's fetch (undici) reports in `error.cause.code`. */
export const NETWORK_CODES: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ENOTFOUND: 'host name not found',
  EAI_AGAIN: 'host name lookup failed',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ETIMEDOUT: 'connection timed out',
  EPIPE: 'connection closed',
  UND_ERR_CONNECT_TIMEOUT: 'connection timed out',
  UND_ERR_SOCKET: 'connection closed by the server',
  UND_ERR_CLOSED: 'connection closed',
};

/** Marks a stream line our fetch wrapper found unreadable, so it is told apart from Ollama's own errors. */
export const UNREADABLE_PREFIX = 'unreadable answer from Ollama: ';

const NOT_FOUND = /model ['"]?(.+?)['"]? not found/i;

export function classifyOllamaError(error: unknown, ctx: CallContext): ModelBrokerError {
  if (error instanceof ModelBrokerError) return error;
  const name = errorName(error);
  const message = errorMessage(error);
  const opts = { cause: error };

  if (name === 'TimeoutError') {
    return new ModelBrokerError('timeout', `Ollama did not answer within ${seconds(ctx.timeoutMs)}`, opts);
  }
  if (name === 'AbortError') {
    return new ModelBrokerError('cancelled', 'the model request was cancelled', opts);
  }

  const status = statusCode(error);
  if (status === 404 && NOT_FOUND.test(message)) {
    const model = ctx.model ?? NOT_FOUND.exec(message)?.[1] ?? 'the model';
    return new ModelBrokerError('model_missing', modelMissingMessage(model), opts);
  }
  // Ollama also reports a missing model inside a stream, without a status code.
  if (status === undefined && /not found, try pulling it first/i.test(message)) {
    return new ModelBrokerError('model_missing', modelMissingMessage(ctx.model ?? 'the model'), opts);
  }
  if (status !== undefined) {
    const detail = message.trim() || `HTTP ${status}`;
    if (status === 401 || status === 403) {
      return new ModelBrokerError(
        'unauthorized',
        `Ollama at ${ctx.host} refused the request (HTTP ${status}: ${detail}): it wants credentials, which the ollama provider does not send; put a server there that needs none, or use SANDBOT_MODEL_PROVIDER=openai with SANDBOT_MODEL_API_KEY`,
        opts,
      );
    }
    if (status === 429) {
      // ollamaFetch puts the server's retry-after at the end of the words, when it sent one.
      const retry = /, retry after (\d+) s$/.exec(detail);
      const words = retry ? detail.slice(0, retry.index) : detail;
      const when = retry ? `retry after ${retry[1]} s` : 'try again in a moment';
      return new ModelBrokerError(
        'rate_limited',
        `Ollama at ${ctx.host} is busy (HTTP 429: ${words}); ${when}`,
        opts,
      );
    }
    if (status >= 500) {
      return new ModelBrokerError('server_error', `Ollama failed (HTTP ${status}): ${detail}`, opts);
    }
    return new ModelBrokerError(
      'bad_response',
      `Ollama at ${ctx.host} refused the request (HTTP ${status}): ${detail}; is OLLAMA_HOST an Ollama server?`,
      opts,
    );
  }

  const code = networkCode(error);
  if (code !== undefined) {
    const words = NETWORK_CODES[code] ?? code;
    return new ModelBrokerError('unreachable', `cannot reach Ollama at ${ctx.host}: ${words}`, opts);
  }
  if (name === 'TypeError' && /fetch failed/i.test(message)) {
    const cause = errorMessage((error as { cause?: unknown }).cause) || 'network error';
    return new ModelBrokerError('unreachable', `cannot reach Ollama at ${ctx.host}: ${cause}`, opts);
  }
  if (message.startsWith(UNREADABLE_PREFIX)) {
    return new ModelBrokerError(
      'bad_response',
      `Ollama at ${ctx.host} sent ${message.slice(UNREADABLE_PREFIX.length)}`,
      opts,
    );
  }
  if (/Did not receive done/i.test(message)) {
    return new ModelBrokerError(
      'bad_response',
      `Ollama at ${ctx.host} ended its answer before it was complete`,
      opts,
    );
  }
  if (name === 'SyntaxError') {
    return new ModelBrokerError(
      'bad_response',
      `Ollama at ${ctx.host} sent an answer that could not be read: ${message}`,
      opts,
    );
  }
  // An `{"error": "..."}` line in a stream arrives as a plain Error with Ollama's own words.
  return new ModelBrokerError('server_error', `Ollama failed: ${message || 'unknown error'}`, opts);
}

export function modelMissingMessage(model: string): string {
  return `model ${model} is not pulled: run \`ollama pull ${model}\``;
}

/** A retry-after header (seconds, or an HTTP date) as whole seconds from `now`; undefined if unreadable. */
export function retryAfterSeconds(value: string | null | undefined, now = Date.now()): number | undefined {
  if (value === null || value === undefined || value.trim() === '') return undefined;
  const number = Number(value.trim());
  if (Number.isFinite(number)) return number >= 0 ? Math.ceil(number) : undefined;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, Math.ceil((date - now) / 1000));
}

export function seconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(1)} s`;
}

export function errorName(error: unknown): string {
  return typeof error === 'object' && error !== null && 'name' in error ? String(error.name) : '';
}

export function errorMessage(error: unknown): string {
  if (typeof error === 'object' && error !== null && 'message' in error) return String(error.message);
  return typeof error === 'string' ? error : '';
}

function statusCode(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const status = (error as { status_code?: unknown }).status_code;
  return typeof status === 'number' ? status : undefined;
}

export function networkCode(error: unknown): string | undefined {
  // fetch wraps socket errors: TypeError('fetch failed', { cause: { code } }); sometimes nested once more.
  let current: unknown = error;
  for (let depth = 0; depth < 3 && typeof current === 'object' && current !== null; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && code in NETWORK_CODES) return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}
