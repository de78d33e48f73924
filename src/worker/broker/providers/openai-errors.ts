import { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from 'openai';
import {
  errorMessage,
  errorName,
  ModelBrokerError,
  NETWORK_CODES,
  networkCode,
  retryAfterSeconds,
  seconds,
} from '../errors.js';

/**
 * What can go wrong when the worker talks to an OpenAI-compatible server (through the `openai`
 * client), in words an operator can act on. Pure: a function of the thrown error and where we were.
 */

export interface OpenAICallContext {
  /** The API's base URL (SANDBOT_MODEL_URL), e.g. http://gpu-box:8000/v1 */
  url: string;
  model?: string;
  timeoutMs: number;
  /** Whether SANDBOT_MODEL_API_KEY is set (its value is never put in words). */
  apiKeySet: boolean;
  /** When the error happened, for a retry-after given as a date. */
  now?: number;
}

const MODEL_NOT_FOUND = /model.*(not found|does not exist|not exist|unknown|no such)|model_not_found/i;

export function classifyOpenAIError(error: unknown, ctx: OpenAICallContext): ModelBrokerError {
  if (error instanceof ModelBrokerError) return error;
  const opts = { cause: error };
  const name = errorName(error);
  const server = `the model server at ${ctx.url}`;
  if (name === 'TimeoutError' || error instanceof APIConnectionTimeoutError) {
    return new ModelBrokerError('timeout', `${server} did not answer within ${seconds(ctx.timeoutMs)}`, opts);
  }
  if (name === 'AbortError' || error instanceof APIUserAbortError) {
    return new ModelBrokerError('cancelled', 'the model request was cancelled', opts);
  }
  if (error instanceof APIConnectionError) {
    return new ModelBrokerError('unreachable', `cannot reach ${server}: ${connectionWords(error)}`, opts);
  }
  if (error instanceof APIError && typeof error.status === 'number') {
    return classifyStatus(error, error.status, ctx, opts);
  }
  if (error instanceof APIError) {
    // An error object inside the stream: the server's own words, mid-answer.
    return new ModelBrokerError(
      'server_error',
      `${server} failed: ${detailOf(error) || 'unknown error'}`,
      opts,
    );
  }
  const message = errorMessage(error);
  if (name === 'SyntaxError') {
    return new ModelBrokerError(
      'bad_response',
      `${server} sent an answer that could not be read (a server-sent event that is not JSON)`,
      opts,
    );
  }
  if (networkCode(error) !== undefined || /terminated|other side closed/i.test(message)) {
    // The body stopped mid-stream: undici reports TypeError('terminated') with the socket error as cause.
    const code = networkCode(error);
    const words = code ? (NETWORK_CODES[code] ?? code) : 'connection closed';
    return new ModelBrokerError(
      'bad_response',
      `${server} ended its answer before it was complete (${words})`,
      opts,
    );
  }
  return new ModelBrokerError('server_error', `${server} failed: ${message || 'unknown error'}`, opts);
}

function classifyStatus(
  error: APIError,
  status: number,
  ctx: OpenAICallContext,
  opts: { cause: unknown },
): ModelBrokerError {
  const server = `the model server at ${ctx.url}`;
  const detail = detailOf(error) || `HTTP ${status}`;
  if (status === 401 || status === 403) {
    const fix = ctx.apiKeySet
      ? 'check SANDBOT_MODEL_API_KEY: the server does not accept the key it holds'
      : 'set SANDBOT_MODEL_API_KEY to a key the server accepts';
    return new ModelBrokerError(
      'unauthorized',
      `${server} refused the request (HTTP ${status}: ${detail}); ${fix}`,
      opts,
    );
  }
  if (status === 429) {
    const retry = retryAfterOf(error.headers, ctx.now);
    const when = retry === undefined ? 'try again in a moment' : `retry after ${retry} s`;
    return new ModelBrokerError(
      'rate_limited',
      `${server} is rate limiting requests (HTTP 429: ${detail}); ${when}`,
      opts,
    );
  }
  if (status === 404 && MODEL_NOT_FOUND.test(`${detail} ${error.code ?? ''}`)) {
    return new ModelBrokerError('model_missing', openAIModelMissing(ctx.model ?? 'the model', ctx.url), opts);
  }
  if (status >= 500) {
    return new ModelBrokerError('server_error', `${server} failed (HTTP ${status}): ${detail}`, opts);
  }
  const hint =
    status === 404
      ? '; is SANDBOT_MODEL_URL the base of an OpenAI-compatible API (often ending in /v1)?'
      : '';
  return new ModelBrokerError(
    'bad_response',
    `${server} refused the request (HTTP ${status}): ${detail}${hint}`,
    opts,
  );
}

export function openAIModelMissing(model: string, url: string): string {
  return `model ${model} is not served by ${url}: set SANDBOT_MODEL to a model it serves (GET ${url.replace(/\/+$/, '')}/models lists them)`;
}

/** The server's own words: the error body's message (OpenAI's `{error: {message}}`, vLLM's `{message}`). */
function detailOf(error: APIError): string {
  const body = error.error as { message?: unknown } | undefined;
  if (body && typeof body.message === 'string') return clip(body.message);
  const text = error.message.replace(/^\d{3} /, '').trim();
  if (text === '(no status code or body)' || /status code \(no body\)$/.test(text)) return '';
  try {
    const parsed = JSON.parse(text) as { message?: unknown; error?: unknown };
    if (typeof parsed.message === 'string') return clip(parsed.message);
    if (typeof parsed.error === 'string') return clip(parsed.error);
  } catch {
    // not JSON: the text as it came
  }
  return clip(text);
}

function retryAfterOf(headers: Headers | undefined, now?: number): number | undefined {
  const ms = Number(headers?.get('retry-after-ms') ?? Number.NaN);
  if (Number.isFinite(ms) && ms >= 0) return Math.ceil(ms / 1000);
  return retryAfterSeconds(headers?.get('retry-after'), now);
}

function connectionWords(error: APIConnectionError): string {
  const code = networkCode(error);
  if (code !== undefined) return NETWORK_CODES[code] ?? code;
  // fetch's own words are in the innermost cause ("fetch failed" wraps "bad port", "getaddrinfo …").
  let words = '';
  let current: unknown = (error as { cause?: unknown }).cause;
  for (let depth = 0; depth < 4 && current !== undefined && current !== null; depth++) {
    const message = errorMessage(current);
    if (message !== '' && message !== 'fetch failed') words = message;
    current = (current as { cause?: unknown }).cause;
  }
  return words || 'network error';
}

function clip(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > 300 ? `${flat.slice(0, 300)}…` : flat;
}
