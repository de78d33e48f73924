import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { text as readText } from 'node:stream/consumers';
import { setTimeout as sleep } from 'node:timers/promises';
import { closeServer } from './close-server.js';
import type { FakeToolCall } from './fake-ollama.js';

/**
 * A fake OpenAI-compatible server (as vLLM and llama-server are) on a real socket: POST
 * /v1/chat/completions streamed as server-sent events, GET /v1/models. Each chat request plays the
 * next scripted step, like fake-ollama's. Tool calls are streamed in pieces the way those servers send
 * them: a call's first delta has its index, id and name and the start of its arguments, later deltas
 * only more of the arguments. Every request is recorded with its Authorization header.
 */

/** One answer to one chat request. */
export interface FakeOpenAIStep {
  /** Assistant text, streamed in a few pieces, verbatim (`<tool_call>`, `<think>` included). */
  reply?: string;
  /** A reasoning model's thinking, streamed first in `delta.reasoning_content`. */
  thinking?: string;
  /** Tool calls, each streamed in pieces after any text. */
  toolCalls?: FakeToolCall[];
  /** Usage reported in the last chunk; default: estimated from the sizes. */
  usage?: { prompt_tokens: number; completion_tokens: number };
  /** Answer this status with OpenAI's error JSON `{error: {message, type, code}}`. */
  status?: number;
  /** The error's message (with `status`), or an `{error}` event mid-stream (without). */
  error?: string;
  /** With `status`: the `retry-after` header, in seconds. */
  retryAfter?: number;
  /** Stream the first chunks, then destroy the socket (a stream cut mid-way). */
  cut?: true;
  /** Stream a `data:` line that is not JSON. */
  garbage?: true;
  /** Wait this long before answering. */
  delayMs?: number;
}

export interface FakeOpenAIMessage {
  role: string;
  content: string | null;
  tool_calls?: { id: string; type: string; function: { name: string; arguments: string } }[];
  tool_call_id?: string;
}

export interface FakeOpenAIRequest {
  model: string;
  messages: FakeOpenAIMessage[];
  tools?: unknown[];
  stream?: boolean;
  stream_options?: { include_usage?: boolean };
  [key: string]: unknown;
}

export type FakeOpenAIScript = FakeOpenAIStep[] | ((request: FakeOpenAIRequest) => FakeOpenAIStep);

export interface RecordedOpenAIRequest {
  method: string;
  path: string;
  /** The Authorization header as received (undefined when none). */
  authorization?: string;
  body: unknown;
}

export interface FakeOpenAIOptions {
  models?: string[];
  script?: FakeOpenAIScript;
  /** When set, every request must carry `Authorization: Bearer <apiKey>`, or gets 401. */
  apiKey?: string;
}

export interface FakeOpenAI {
  /** The API's base URL, ending in /v1. */
  url: string;
  requests: RecordedOpenAIRequest[];
  chatRequests(): FakeOpenAIRequest[];
  setScript(script: FakeOpenAIScript): void;
  setModels(models: string[]): void;
  setApiKey(key: string | undefined): void;
  close(): Promise<void>;
}

export async function startFakeOpenAI(options: FakeOpenAIOptions = {}): Promise<FakeOpenAI> {
  let models = options.models ?? ['qwen2.5-7b-instruct'];
  let script: FakeOpenAIScript = options.script ?? [];
  let apiKey = options.apiKey;
  let nextStep = 0;
  const requests: RecordedOpenAIRequest[] = [];

  const stepFor = (request: FakeOpenAIRequest): FakeOpenAIStep => {
    if (typeof script === 'function') return script(request);
    const step = script[nextStep];
    nextStep += 1;
    return step ?? { status: 500, error: 'fake openai: no scripted step left for this request' };
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const method = req.method ?? 'GET';
    const text = await readText(req);
    const authorization = req.headers.authorization;
    let body: unknown;
    try {
      body = text === '' ? undefined : JSON.parse(text);
    } catch {
      requests.push({ method, path, authorization, body: text });
      return sendError(
        res,
        400,
        'We could not parse the JSON body of your request.',
        'invalid_request_error',
      );
    }
    requests.push({ method, path, authorization, body });
    if (apiKey !== undefined && authorization !== `Bearer ${apiKey}`) {
      return sendError(res, 401, 'Incorrect API key provided.', 'invalid_request_error', 'invalid_api_key');
    }
    const route = `${method} ${path}`;
    if (route === 'GET /v1/models') {
      return sendJson(res, 200, {
        object: 'list',
        data: models.map((id) => ({ id, object: 'model', created: 1_735_689_600, owned_by: 'fake' })),
      });
    }
    if (route === 'POST /v1/chat/completions') {
      const request = body as FakeOpenAIRequest;
      if (!models.includes(request.model)) {
        return sendError(
          res,
          404,
          `The model \`${request.model}\` does not exist or you do not have access to it.`,
          'invalid_request_error',
          'model_not_found',
        );
      }
      const unanswered = toolMessageProblem(request.messages ?? []);
      if (unanswered) return sendError(res, 400, unanswered, 'invalid_request_error');
      return playStep(res, request, stepFor(request));
    }
    return sendJson(res, 404, { error: { message: `Not found: ${path}`, type: 'not_found', code: null } });
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) sendError(res, 500, `fake openai: ${String(error)}`, 'server_error');
      else res.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}/v1`,
    requests,
    chatRequests: () =>
      requests.filter((r) => r.path === '/v1/chat/completions').map((r) => r.body as FakeOpenAIRequest),
    setScript(next) {
      script = next;
      nextStep = 0;
    },
    setModels(next) {
      models = next;
    },
    setApiKey(key) {
      apiKey = key;
    },
    close: () => closeServer(server),
  };
}

async function playStep(
  res: ServerResponse,
  request: FakeOpenAIRequest,
  step: FakeOpenAIStep,
): Promise<void> {
  if (step.delayMs !== undefined) await sleep(step.delayMs);
  if (step.status !== undefined) {
    const headers: Record<string, string> =
      step.retryAfter !== undefined ? { 'retry-after': String(step.retryAfter) } : {};
    const type = step.status >= 500 ? 'server_error' : 'invalid_request_error';
    return sendError(
      res,
      step.status,
      step.error ?? `fake failure (HTTP ${step.status})`,
      type,
      null,
      headers,
    );
  }
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  const chunks = answerChunks(request, step);
  for (const [index, chunk] of chunks.entries()) {
    if (res.destroyed) return;
    res.write(`data: ${JSON.stringify(chunk)}\n\n`);
    if (index === 1 && step.cut) {
      // Let the first chunks reach the client, then drop the connection without [DONE].
      await sleep(50);
      res.socket?.destroy();
      return;
    }
    if (index === 1 && step.garbage) res.write('data: {this is not json\n\n');
  }
  if (step.error !== undefined) {
    res.write(
      `data: ${JSON.stringify({ error: { message: step.error, type: 'server_error', code: null } })}\n\n`,
    );
  }
  res.end('data: [DONE]\n\n');
}

/** Chunks as vLLM streams them: role, reasoning, text, tool-call pieces, finish, then usage. */
export function answerChunks(request: FakeOpenAIRequest, step: FakeOpenAIStep): Record<string, unknown>[] {
  const base = {
    id: 'chatcmpl-fake',
    object: 'chat.completion.chunk',
    created: 1_735_689_600,
    model: request.model,
  };
  const chunk = (delta: Record<string, unknown>, finish: string | null = null) => ({
    ...base,
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
  });
  const reply = step.reply ?? (step.toolCalls || step.error ? '' : 'ok');
  const chunks: Record<string, unknown>[] = [chunk({ role: 'assistant', content: '' })];
  for (const piece of splitText(step.thinking ?? '')) chunks.push(chunk({ reasoning_content: piece }));
  for (const piece of splitText(reply)) chunks.push(chunk({ content: piece }));
  for (const [index, call] of (step.toolCalls ?? []).entries()) {
    const args = typeof call.arguments === 'string' ? call.arguments : JSON.stringify(call.arguments);
    const [first = '', ...rest] = splitText(args, 4);
    const id = `chatcmpl-tool-${index.toString().padStart(8, '0')}`;
    chunks.push(
      chunk({
        tool_calls: [{ index, id, type: 'function', function: { name: call.name, arguments: first } }],
      }),
    );
    for (const piece of rest) chunks.push(chunk({ tool_calls: [{ index, function: { arguments: piece } }] }));
  }
  if (step.error !== undefined) return chunks; // the error event takes the place of the end
  chunks.push(chunk({}, step.toolCalls?.length ? 'tool_calls' : 'stop'));
  if (request.stream_options?.include_usage) {
    const usage = step.usage ?? {
      prompt_tokens: Math.ceil(JSON.stringify(request.messages ?? []).length / 4),
      completion_tokens: Math.max(
        1,
        Math.ceil(((step.thinking ?? '') + reply + JSON.stringify(step.toolCalls ?? [])).length / 4),
      ),
    };
    chunks.push({
      ...base,
      choices: [],
      usage: { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens },
    });
  }
  return chunks;
}

/**
 * As OpenAI and vLLM refuse it: a `tool` message must answer, by `tool_call_id`, a call of the
 * assistant message before it (tool results in between).
 */
function toolMessageProblem(messages: FakeOpenAIMessage[]): string | undefined {
  let open = new Set<string>();
  for (const [i, message] of messages.entries()) {
    if (message.role === 'assistant') open = new Set((message.tool_calls ?? []).map((c) => c.id));
    else if (message.role === 'tool') {
      if (!message.tool_call_id || !open.has(message.tool_call_id)) {
        return `messages[${i}]: a message with role 'tool' must be a response to a preceding message with 'tool_calls'`;
      }
      open.delete(message.tool_call_id);
    } else open = new Set();
  }
  return undefined;
}

/** Up to `parts` pieces, split on code points. */
function splitText(text: string, parts = 3): string[] {
  if (text === '') return [];
  const chars = Array.from(text);
  const size = Math.max(1, Math.ceil(chars.length / parts));
  const pieces: string[] = [];
  for (let i = 0; i < chars.length; i += size) pieces.push(chars.slice(i, i + size).join(''));
  return pieces;
}

function sendError(
  res: ServerResponse,
  status: number,
  message: string,
  type: string,
  code: string | null = null,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify({ error: { message, type, param: null, code } }));
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}
