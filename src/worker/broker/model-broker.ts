import { type Message, Ollama, type Tool } from 'ollama';
import type { ChatMessage } from '../../contracts/protocol/agent.js';
import type { SkillToolDefinition } from '../../contracts/protocol/skill-tools.js';
import { toolDefinitions } from '../../contracts/protocol/tools.js';
import { classifyOllamaError, ModelBrokerError } from './errors.js';
import { ollamaFetch } from './ollama-fetch.js';
import { addChunk, buildRequestMessages, emptyReply, type ShapedReply, shapeReply } from './reply.js';
import { defaultSystemPrompt } from './system-prompt.js';
import { formatError, stripThinking } from './tool-call-shapes.js';

/**
 * A call the model wrote but that could not be read is answered with a tool error giving the exact
 * format, and the model asked again, at most this many times per request (each counts as a model call).
 */
export const FORMAT_RETRIES = 2;

/**
 * The worker's only way to a model: Ollama's native /api/chat (tool calling works there), streamed,
 * with a deadline per request. The sandbox never talks to Ollama; it asks the worker, which calls this.
 */

export interface ModelBrokerOptions {
  /** Ollama base URL (OLLAMA_HOST). */
  host: string;
  /** Time limit of one request, from sending it to the last streamed chunk. */
  timeoutMs: number;
}

export interface ChatRequest {
  model: string;
  messages: readonly ChatMessage[];
  /** Put first in the request; defaults to the built-in sandbox prompt. */
  system?: string;
  /** Cancels the request, including the HTTP call. */
  signal?: AbortSignal;
  /** Called with each piece of streamed text, for progress. */
  onDelta?: (text: string) => void;
  /** Tools offered besides the built-in ones (the conversation's enabled skills). */
  tools?: readonly SkillToolDefinition[];
  /** No tools at all (a request for plain text, e.g. a summary). */
  withoutTools?: boolean;
  /** The context window to serve the request with (Ollama's `num_ctx`; its own default is small). */
  contextTokens?: number;
}

export interface ChatResult {
  message: ChatMessage;
  promptTokens: number;
  completionTokens: number;
  durationMs: number;
  /** Requests made to answer this one: 1, plus one per retry after an unreadable tool call. */
  modelCalls: number;
  /** Characters of thinking taken out of the answers (never shown, never sent back). */
  thinkingChars: number;
}

export type CheckResult<T extends object = object> =
  | ({ ok: true } & T)
  | { ok: false; error: ModelBrokerError };

export class ModelBroker {
  private readonly host: string;
  private readonly timeoutMs: number;
  private readonly tools = toolDefinitions() as Tool[];

  constructor(options: ModelBrokerOptions) {
    this.host = options.host.replace(/\/+$/, '');
    this.timeoutMs = options.timeoutMs;
  }

  async chat(request: ChatRequest): Promise<ChatResult> {
    const started = performance.now();
    const builtIn = request.withoutTools ? [] : this.tools;
    const tools =
      request.tools?.length && !request.withoutTools ? [...builtIn, ...(request.tools as Tool[])] : builtIn;
    const offered = tools.map((tool) => tool.function.name ?? '').filter((name) => name !== '');
    const result = { promptTokens: 0, completionTokens: 0, modelCalls: 0, thinkingChars: 0 };
    let messages = [...request.messages];
    for (;;) {
      const answer = await this.chatOnce(request, messages, tools, offered);
      result.modelCalls += 1;
      result.promptTokens += answer.promptTokens;
      result.completionTokens += answer.completionTokens;
      result.thinkingChars += answer.thinking.length;
      const done = answer.unreadable.length === 0 || result.modelCalls > FORMAT_RETRIES;
      if (done) {
        const message =
          answer.unreadable.length > 0 && !answer.message.tool_calls?.length
            ? { ...answer.message, content: answer.written } // out of retries: the text as written
            : answer.message;
        return { ...result, message, durationMs: Math.round(performance.now() - started) };
      }
      // The model is told what went wrong and the format to use, then asked again.
      messages = [
        ...messages,
        { role: 'assistant', content: answer.written },
        { role: 'tool', tool_name: 'tool_call', content: formatError(answer.unreadable, offered) },
      ];
    }
  }

  /** One streamed request; the answer shaped (thinking out, written calls read). */
  private chatOnce(
    request: ChatRequest,
    history: ChatMessage[],
    tools: Tool[],
    offered: string[],
  ): Promise<ShapedReply & { written: string; promptTokens: number; completionTokens: number }> {
    return this.withDeadline(request.model, request.signal, async (signal) => {
      const messages = buildRequestMessages(request.system ?? defaultSystemPrompt(), history);
      const stream = await this.client(signal).chat({
        model: request.model,
        messages: messages as Message[],
        tools,
        stream: true,
        ...(request.contextTokens ? { options: { num_ctx: request.contextTokens } } : {}),
      });
      let state = emptyReply();
      for await (const chunk of stream) {
        const next = addChunk(state, chunk);
        state = next.state;
        if (next.delta !== '') request.onDelta?.(next.delta);
      }
      return {
        ...shapeReply(state, offered),
        written: stripThinking(state.content).content.trim(),
        promptTokens: state.promptTokens,
        completionTokens: state.completionTokens,
      };
    });
  }

  /** Is Ollama there? Answers its version. */
  async checkServer(): Promise<CheckResult<{ version: string }>> {
    return this.check(undefined, async (signal) => {
      const { version } = await this.client(signal).version();
      if (typeof version !== 'string') throw new SyntaxError('/api/version answered without a version');
      return { version };
    });
  }

  /** Is the model pulled? On a missing model, also lists the models that are. */
  async checkModel(model: string): Promise<CheckResult & { pulled?: string[] }> {
    const result = await this.check(model, async (signal) => {
      await this.client(signal).show({ model });
      return {};
    });
    if (result.ok || result.error.kind !== 'model_missing') return result;
    const listed = await this.check(undefined, async (signal) => {
      const { models } = await this.client(signal).list();
      return { pulled: Array.isArray(models) ? models.map((m) => String(m.name)) : [] };
    });
    return listed.ok ? { ...result, pulled: listed.pulled } : result;
  }

  private async check<T extends object>(
    model: string | undefined,
    fn: (signal: AbortSignal) => Promise<T>,
  ): Promise<CheckResult<T>> {
    try {
      return { ok: true, ...(await this.withDeadline(model, undefined, fn)) };
    } catch (error) {
      return { ok: false, error: error as ModelBrokerError };
    }
  }

  private client(signal: AbortSignal): Ollama {
    // One client per request: the client cannot take a signal, so it goes into its fetch.
    return new Ollama({ host: this.host, fetch: ollamaFetch(signal) });
  }

  /** Runs `fn` under the request deadline and the caller's signal; every error leaves as ModelBrokerError. */
  private async withDeadline<T>(
    model: string | undefined,
    callerSignal: AbortSignal | undefined,
    fn: (signal: AbortSignal) => Promise<T>,
  ): Promise<T> {
    const controller = new AbortController();
    const timer = setTimeout(
      () => controller.abort(new DOMException(`no answer within ${this.timeoutMs} ms`, 'TimeoutError')),
      this.timeoutMs,
    );
    const cancel = () => controller.abort(new DOMException('cancelled by the caller', 'AbortError'));
    if (callerSignal?.aborted) cancel();
    else callerSignal?.addEventListener('abort', cancel, { once: true });
    try {
      return await fn(controller.signal);
    } catch (error) {
      // After our own abort, whatever surfaced (a read error, a cut stream) is because of the abort.
      const cause = controller.signal.aborted ? controller.signal.reason : error;
      throw classifyOllamaError(cause, { host: this.host, model, timeoutMs: this.timeoutMs });
    } finally {
      clearTimeout(timer);
      callerSignal?.removeEventListener('abort', cancel);
      controller.abort(); // ends the HTTP request if the answer was abandoned half-way
    }
  }
}

export { ModelBrokerError };
