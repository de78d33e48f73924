import type { Tool } from 'ollama';
import type { Config } from '../../contracts/config/schema.js';
import type { ChatMessage } from '../../contracts/protocol/agent.js';
import type { SkillToolDefinition } from '../../contracts/protocol/skill-tools.js';
import { toolDefinitions } from '../../contracts/protocol/tools.js';
import { ModelBrokerError } from './errors.js';
import { OllamaProvider } from './providers/ollama-provider.js';
import { OpenAIProvider } from './providers/openai-provider.js';
import type { ModelProvider } from './providers/provider.js';
import { buildRequestMessages, type ShapedReply, shapeReply } from './reply.js';
import { defaultSystemPrompt } from './system-prompt.js';
import { formatError, stripThinking } from './tool-call-shapes.js';

/**
 * A call the model wrote but that could not be read is answered with a tool error giving the exact
 * format, and the model asked again, at most this many times per request (each counts as a model call).
 */
export const FORMAT_RETRIES = 2;

/**
 * The worker's only way to a model: Ollama's native /api/chat, or an OpenAI-compatible server's chat
 * completions (SANDBOT_MODEL_PROVIDER, providers/), streamed, with a deadline per request. The sandbox
 * never talks to the model server (nor holds its API key); it asks the worker, which calls this.
 */

export interface ModelBrokerOptions {
  /** The server's base URL: Ollama's (OLLAMA_HOST), or the OpenAI-compatible API's (SANDBOT_MODEL_URL). */
  host: string;
  /** Time limit of one request, from sending it to the last streamed chunk. */
  timeoutMs: number;
  /** Which API `host` speaks; default ollama. */
  provider?: 'ollama' | 'openai';
  /** Bearer token for the openai provider (SANDBOT_MODEL_API_KEY). */
  apiKey?: string;
}

/** The URL of the model server the config names: what the fair-use gate counts requests per. */
export function modelServerUrl(
  config: Pick<Config, 'SANDBOT_MODEL_PROVIDER' | 'OLLAMA_HOST' | 'SANDBOT_MODEL_URL'>,
): string {
  return config.SANDBOT_MODEL_PROVIDER === 'openai' ? (config.SANDBOT_MODEL_URL ?? '') : config.OLLAMA_HOST;
}

/** The broker the config asks for: provider, its URL and key. */
export function modelBrokerFor(
  config: Pick<
    Config,
    'SANDBOT_MODEL_PROVIDER' | 'OLLAMA_HOST' | 'SANDBOT_MODEL_URL' | 'SANDBOT_MODEL_API_KEY'
  >,
  timeoutMs: number,
): ModelBroker {
  if (config.SANDBOT_MODEL_PROVIDER === 'openai') {
    return new ModelBroker({
      provider: 'openai',
      // parseConfig refuses the openai provider without SANDBOT_MODEL_URL.
      host: modelServerUrl(config),
      timeoutMs,
      ...(config.SANDBOT_MODEL_API_KEY !== undefined ? { apiKey: config.SANDBOT_MODEL_API_KEY } : {}),
    });
  }
  return new ModelBroker({ host: config.OLLAMA_HOST, timeoutMs });
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
  /** The context window to ask for (Ollama: options.num_ctx; the openai provider ignores it). */
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
  private readonly timeoutMs: number;
  private readonly provider: ModelProvider;
  readonly providerName: 'ollama' | 'openai';
  private readonly tools = toolDefinitions() as Tool[];

  constructor(options: ModelBrokerOptions) {
    const host = options.host.replace(/\/+$/, '');
    this.timeoutMs = options.timeoutMs;
    this.providerName = options.provider ?? 'ollama';
    this.provider =
      options.provider === 'openai'
        ? new OpenAIProvider(host, options.apiKey, options.timeoutMs)
        : new OllamaProvider(host);
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
      const state = await this.provider.chat(
        {
          model: request.model,
          messages,
          tools,
          ...(request.contextTokens !== undefined ? { contextTokens: request.contextTokens } : {}),
          ...(request.onDelta ? { onDelta: request.onDelta } : {}),
        },
        signal,
      );
      return {
        ...shapeReply(state, offered),
        written: stripThinking(state.content).content.trim(),
        promptTokens: state.promptTokens,
        completionTokens: state.completionTokens,
      };
    });
  }

  /**
   * Is the server there? Answers its version (Ollama's, e.g. 0.12.6), or for an OpenAI-compatible
   * server (which has none) how many models it serves; `describeServer` words it.
   */
  async checkServer(): Promise<CheckResult<{ version: string }>> {
    return this.check(undefined, async (signal) => ({ version: await this.provider.serverVersion(signal) }));
  }

  /** A checkServer version in words: "Ollama 0.12.6", "OpenAI-compatible server, 2 models". */
  describeServer(version: string): string {
    return this.providerName === 'ollama' ? `Ollama ${version}` : version;
  }

  /** Is the model there (pulled, or served)? On a missing model, also lists the models that are. */
  async checkModel(model: string): Promise<CheckResult & { pulled?: string[] }> {
    const result = await this.check(model, async (signal) => {
      await this.provider.showModel(model, signal);
      return {};
    });
    if (result.ok || result.error.kind !== 'model_missing') return result;
    const listed = await this.check(undefined, async (signal) => ({
      pulled: await this.provider.listModels(signal),
    }));
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
      throw this.provider.classify(cause, {
        ...(model !== undefined ? { model } : {}),
        timeoutMs: this.timeoutMs,
      });
    } finally {
      clearTimeout(timer);
      callerSignal?.removeEventListener('abort', cancel);
      controller.abort(); // ends the HTTP request if the answer was abandoned half-way
    }
  }
}

export { ModelBrokerError };
