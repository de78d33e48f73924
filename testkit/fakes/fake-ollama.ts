import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { text as readText } from 'node:stream/consumers';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { closeServer } from './close-server.js';

/**
 * A fake Ollama server speaking the parts of Ollama's native API sandbot uses, on a real socket:
 * POST /api/chat (NDJSON stream, or one JSON with stream:false), GET /api/tags, POST /api/show,
 * GET /api/version. Each /api/chat request plays the next scripted step. Error bodies and status
 * codes are Ollama's own (server/routes.go).
 *
 * Also reachable from another process: `main()` starts it from argv and prints its URL, and
 * /__fake/{script,release,models,requests} drive it over HTTP.
 */

export interface FakeToolCall {
  name: string;
  /** A string is sent as is (some servers and models send the arguments as a JSON string). */
  arguments: Record<string, unknown> | string;
}

/** One answer to one /api/chat request. Fields combine: timing first, then the answer. */
export interface FakeStep {
  /**
   * Assistant text, streamed in a few chunks, verbatim: also how a model writes a call in its text
   * (`<tool_call>{…}</tool_call>`, a bare `{"name": …}`) or thinks in it (`<think>…</think>`).
   */
  reply?: string;
  /** A reasoning model's thinking, streamed in Ollama's separate `message.thinking` field first. */
  thinking?: string;
  /** Tool calls, sent in one chunk after any reply text (as Ollama does). */
  toolCalls?: FakeToolCall[];
  /** Answer 200 with a body that is not Ollama's (true: a fixed non-JSON text). */
  garbage?: true | string;
  /** Answer this HTTP status with `{"error": error}`. */
  status?: number;
  /** Without `status`: an `{"error": …}` line after the content, like an error mid-stream. */
  error?: string;
  /** Send these objects as the NDJSON stream, verbatim (for malformed-but-JSON answers). */
  rawChunks?: unknown[];
  /** Wait this long before answering. */
  delayMs?: number;
  /** Send nothing until `release(hold)` is called. */
  hold?: string;
  /** Send the first chunk, then nothing until `release(holdMidStream)`. */
  holdMidStream?: string;
}

export interface FakeChatMessage {
  role: string;
  content: string;
  tool_calls?: { function: { name: string; arguments: Record<string, unknown> } }[];
  tool_name?: string;
}

export interface FakeChatRequest {
  model: string;
  messages: FakeChatMessage[];
  tools?: unknown[];
  stream?: boolean;
  [key: string]: unknown;
}

export type FakeScript = FakeStep[] | ((request: FakeChatRequest) => FakeStep);

export interface RecordedRequest {
  method: string;
  path: string;
  body: unknown;
  /** The client went away before the answer was complete (e.g. it timed out or was cancelled). */
  aborted?: boolean;
}

export interface FakeOllamaOptions {
  models?: string[];
  script?: FakeScript;
  port?: number;
  /** The context length /api/show reports (`model_info["qwen2.context_length"]`); unset: none reported. */
  contextLength?: number;
}

export interface FakeOllama {
  url: string;
  /** Every request received, in order, with its parsed JSON body (undefined for GET). */
  requests: RecordedRequest[];
  /** The bodies of the /api/chat requests so far. */
  chatRequests(): FakeChatRequest[];
  setScript(script: FakeScript): void;
  setModels(models: string[]): void;
  /** What /api/show reports as the models' context length from now on (undefined: nothing). */
  setContextLength(tokens: number | undefined): void;
  /** Lets a held request go on (also when called before the request arrives). */
  release(holdId: string): void;
  /** Resolves once a request is being held at `holdId`. */
  waitForHold(holdId: string): Promise<void>;
  close(): Promise<void>;
}

export const FAKE_OLLAMA_VERSION = '0.12.6';

export async function startFakeOllama(options: FakeOllamaOptions = {}): Promise<FakeOllama> {
  let models = options.models ?? ['qwen2.5:7b'];
  let script: FakeScript = options.script ?? [];
  let nextStep = 0;
  let contextLength = options.contextLength;
  const requests: RecordedRequest[] = [];
  const holds = new Holds();

  const stepFor = (request: FakeChatRequest): FakeStep => {
    if (typeof script === 'function') return script(request);
    const step = script[nextStep];
    nextStep += 1;
    return step ?? { status: 500, error: 'fake ollama: no scripted step left for this request' };
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { error: `fake ollama: ${String(error)}` });
      else res.destroy();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const method = req.method ?? 'GET';
    const text = await readText(req);
    let body: unknown;
    if (text !== '') {
      try {
        body = JSON.parse(text);
      } catch {
        requests.push({ method, path, body: text });
        return sendJson(res, 400, { error: 'invalid character in request body' });
      }
    }
    const record: RecordedRequest = { method, path, body };
    requests.push(record);
    const gone = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) record.aborted = true;
      gone.abort();
    });

    const route = `${method} ${path}`;
    if (route === 'GET /' || route === 'HEAD /') return sendText(res, 200, 'Ollama is running');
    if (route === 'GET /api/version') return sendJson(res, 200, { version: FAKE_OLLAMA_VERSION });
    if (route === 'GET /api/tags') return sendJson(res, 200, { models: models.map(modelEntry) });
    if (route === 'POST /api/show') {
      const name = modelName(body);
      if (!name) return sendJson(res, 400, { error: 'model is required' });
      if (!knownModel(models, name)) return sendJson(res, 404, { error: `model '${name}' not found` });
      return sendJson(res, 200, showResponse(name, contextLength));
    }
    if (route === 'POST /api/chat') {
      const request = body as FakeChatRequest;
      const name = modelName(body);
      if (!name) return sendJson(res, 400, { error: 'model is required' });
      if (!knownModel(models, name)) return sendJson(res, 404, { error: `model '${name}' not found` });
      return playStep(res, request, stepFor(request), holds, gone.signal);
    }
    // Control endpoints, for a fake running in another process.
    if (route === 'POST /__fake/script') {
      script = (body as { steps: FakeStep[] }).steps;
      nextStep = 0;
      return sendJson(res, 200, { ok: true });
    }
    if (route === 'POST /__fake/release') {
      holds.release(String((body as { id: unknown }).id));
      return sendJson(res, 200, { ok: true });
    }
    if (route === 'POST /__fake/models') {
      models = (body as { models: string[] }).models;
      return sendJson(res, 200, { ok: true });
    }
    if (route === 'GET /__fake/requests') return sendJson(res, 200, requests);
    return sendText(res, 404, '404 page not found');
  }

  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    chatRequests: () => requests.filter((r) => r.path === '/api/chat').map((r) => r.body as FakeChatRequest),
    setScript(next) {
      script = next;
      nextStep = 0;
    },
    setModels(next) {
      models = next;
    },
    setContextLength(tokens) {
      contextLength = tokens;
    },
    release: (id) => holds.release(id),
    waitForHold: (id) => holds.arrived(id),
    close: () => closeServer(server),
  };
}

async function playStep(
  res: ServerResponse,
  request: FakeChatRequest,
  step: FakeStep,
  holds: Holds,
  gone: AbortSignal,
): Promise<void> {
  if (step.delayMs !== undefined && !(await pause(sleep(step.delayMs, undefined, { signal: gone })))) return;
  if (step.hold !== undefined && !(await pause(holds.wait(step.hold, gone)))) return;
  if (step.status !== undefined) {
    return sendJson(res, step.status, { error: step.error ?? `fake failure (HTTP ${step.status})` });
  }
  if (step.garbage !== undefined) {
    const text = step.garbage === true ? '<html>this is not what Ollama sends</html>' : step.garbage;
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    res.end(text);
    return;
  }
  if (request.stream === false && step.rawChunks === undefined) {
    return sendJson(res, 200, collapse(answerChunks(request, step)));
  }
  const chunks: unknown[] = step.rawChunks ?? answerChunks(request, step);
  res.writeHead(200, { 'content-type': 'application/x-ndjson' });
  for (const [index, chunk] of chunks.entries()) {
    if (gone.aborted) return;
    res.write(`${JSON.stringify(chunk)}\n`);
    if (index === 0 && step.holdMidStream !== undefined) {
      if (!(await pause(holds.wait(step.holdMidStream, gone)))) return;
    }
  }
  if (step.error !== undefined) res.write(`${JSON.stringify({ error: step.error })}\n`);
  res.end();
}

/** Chunks the way Ollama streams them: text pieces, a tool-call chunk, then the final `done` chunk. */
function answerChunks(request: FakeChatRequest, step: FakeStep): Record<string, unknown>[] {
  const base = () => ({ model: request.model, created_at: new Date().toISOString() });
  const reply = step.reply ?? (step.toolCalls || step.error ? '' : 'ok');
  const chunks: Record<string, unknown>[] = [
    ...splitText(step.thinking ?? '').map((thinking) => ({
      ...base(),
      message: { role: 'assistant', content: '', thinking },
      done: false,
    })),
    ...splitText(reply).map((content) => ({
      ...base(),
      message: { role: 'assistant', content },
      done: false,
    })),
  ];
  if (step.toolCalls && step.toolCalls.length > 0) {
    chunks.push({
      ...base(),
      message: {
        role: 'assistant',
        content: '',
        tool_calls: step.toolCalls.map((call, index) => ({
          id: `call_${index.toString().padStart(8, '0')}`,
          function: { index, name: call.name, arguments: call.arguments },
        })),
      },
      done: false,
    });
  }
  if (step.error !== undefined) return chunks; // the error line replaces the final chunk
  const promptTokens = Math.ceil(JSON.stringify(request.messages ?? []).length / 4);
  const completionTokens = Math.max(
    1,
    Math.ceil(((step.thinking ?? '') + reply + JSON.stringify(step.toolCalls ?? [])).length / 4),
  );
  chunks.push({
    ...base(),
    message: { role: 'assistant', content: '' },
    done: true,
    done_reason: 'stop',
    total_duration: 1_200_000_000,
    load_duration: 50_000_000,
    prompt_eval_count: promptTokens,
    prompt_eval_duration: 300_000_000,
    eval_count: completionTokens,
    eval_duration: 850_000_000,
  });
  return chunks;
}

/** stream:false: Ollama sends one object, the final chunk carrying the whole message. */
function collapse(chunks: Record<string, unknown>[]): Record<string, unknown> {
  const messages = chunks.map(
    (c) => c.message as { content?: string; thinking?: string; tool_calls?: unknown[] } | undefined,
  );
  const thinking = messages.map((m) => m?.thinking ?? '').join('');
  const toolCalls = messages.flatMap((m) => m?.tool_calls ?? []);
  const last = chunks[chunks.length - 1] ?? {};
  return {
    ...last,
    message: {
      role: 'assistant',
      content: messages.map((m) => m?.content ?? '').join(''),
      ...(thinking !== '' ? { thinking } : {}),
      ...(toolCalls.length > 0 ? { tool_calls: toolCalls } : {}),
    },
  };
}

/** Up to three pieces, split on code points. */
function splitText(text: string): string[] {
  if (text === '') return [];
  const chars = Array.from(text);
  const size = Math.max(1, Math.ceil(chars.length / 3));
  const pieces: string[] = [];
  for (let i = 0; i < chars.length; i += size) pieces.push(chars.slice(i, i + size).join(''));
  return pieces;
}

// ---- scripting helpers ----

export interface MessageMatch {
  role?: string;
  /** Substring (or pattern) of the message's content. */
  contains?: string | RegExp;
  /** For tool results: the tool that produced it. */
  toolName?: string;
}

export function matchesMessage(message: FakeChatMessage | undefined, match: MessageMatch): boolean {
  if (!message) return false;
  if (match.role !== undefined && message.role !== match.role) return false;
  if (match.toolName !== undefined && message.tool_name !== match.toolName) return false;
  if (typeof match.contains === 'string' && !message.content.includes(match.contains)) return false;
  if (match.contains instanceof RegExp && !match.contains.test(message.content)) return false;
  return true;
}

/**
 * A script that answers by the last message of each request, first matching rule wins:
 * `whenLastMessage([{ when: { role: 'tool', contains: 'hello' }, answer: { reply: 'Done.' } }], { reply: '?' })`.
 */
export function whenLastMessage(
  rules: { when: MessageMatch; answer: FakeStep }[],
  otherwise?: FakeStep,
): (request: FakeChatRequest) => FakeStep {
  return (request) => {
    const last = request.messages?.[request.messages.length - 1];
    const rule = rules.find((r) => matchesMessage(last, r.when));
    if (rule) return rule.answer;
    return (
      otherwise ?? {
        status: 500,
        error: `fake ollama: no rule matches the last message ${JSON.stringify(last).slice(0, 200)}`,
      }
    );
  };
}

// ---- plumbing ----

class Holds {
  private readonly released = new Set<string>();
  private readonly waiting = new Map<string, Set<() => void>>();
  private readonly arrivals = new Map<string, Set<() => void>>();
  private readonly seen = new Set<string>();

  release(id: string): void {
    this.released.add(id);
    for (const wake of this.waiting.get(id) ?? []) wake();
    this.waiting.delete(id);
  }

  arrived(id: string): Promise<void> {
    if (this.seen.has(id)) return Promise.resolve();
    return new Promise((resolve) => add(this.arrivals, id, resolve));
  }

  /** Resolves when released; rejects if the client goes away first. */
  wait(id: string, gone: AbortSignal): Promise<void> {
    this.seen.add(id);
    for (const notify of this.arrivals.get(id) ?? []) notify();
    this.arrivals.delete(id);
    if (this.released.has(id)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const wake = () => resolve();
      add(this.waiting, id, wake);
      gone.addEventListener('abort', () => {
        this.waiting.get(id)?.delete(wake);
        reject(new Error('client went away'));
      });
    });
  }
}

function add(map: Map<string, Set<() => void>>, id: string, fn: () => void): void {
  const set = map.get(id) ?? new Set();
  set.add(fn);
  map.set(id, set);
}

/** true when the wait ended normally, false when the client went away. */
async function pause(wait: Promise<unknown>): Promise<boolean> {
  try {
    await wait;
    return true;
  } catch {
    return false;
  }
}

function modelName(body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const { model, name } = body as { model?: unknown; name?: unknown };
  const value = model ?? name;
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** Ollama fills in the ":latest" tag when none is given. */
function knownModel(models: string[], name: string): boolean {
  const full = name.includes(':') ? name : `${name}:latest`;
  return models.some((m) => m === name || m === full);
}

function details() {
  return {
    parent_model: '',
    format: 'gguf',
    family: 'qwen2',
    families: ['qwen2'],
    parameter_size: '7.6B',
    quantization_level: 'Q4_K_M',
  };
}

function modelEntry(name: string) {
  return {
    name,
    model: name,
    modified_at: '2025-01-01T00:00:00Z',
    size: 4_683_087_332,
    digest: '845dbda0ea48ed749caafd9e6037047aa19acfcfd82e704d7ca97d631a0b697e',
    details: details(),
  };
}

function showResponse(name: string, contextLength: number | undefined) {
  return {
    license: '',
    modelfile: `# Modelfile generated by "ollama show"\nFROM ${name}\n`,
    parameters: '',
    template: '{{ .Prompt }}',
    details: details(),
    model_info: {
      'general.architecture': 'qwen2',
      ...(contextLength === undefined ? {} : { 'qwen2.context_length': contextLength }),
    },
    capabilities: ['completion', 'tools'],
    modified_at: '2025-01-01T00:00:00Z',
  };
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
  res.end(JSON.stringify(body));
}

function sendText(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' });
  res.end(text);
}

/** `tsx testkit/fakes/fake-ollama.ts [--models a,b] [--script steps.json] [--port N]`: prints the URL. */
export async function main(argv = process.argv.slice(2)): Promise<FakeOllama> {
  const arg = (flag: string) => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const models = arg('--models')?.split(',').filter(Boolean) ?? process.env.FAKE_OLLAMA_MODELS?.split(',');
  const scriptFile = arg('--script') ?? process.env.FAKE_OLLAMA_SCRIPT;
  const script = scriptFile ? (JSON.parse(readFileSync(scriptFile, 'utf8')) as FakeStep[]) : undefined;
  const port = Number(arg('--port') ?? process.env.FAKE_OLLAMA_PORT ?? 0);
  const fake = await startFakeOllama({ models, script, port });
  process.stdout.write(`${fake.url}\n`);
  const stop = () => void fake.close().then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  return fake;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) void main();
