import OpenAI from 'openai';
import { ModelBrokerError } from '../errors.js';
import type { ReplyState } from '../reply.js';
import { classifyOpenAIError, openAIModelMissing } from './openai-errors.js';
import { addOpenAIChunk, emptyOpenAIReply, toOpenAIMessages, toReplyState } from './openai-stream.js';
import type { ModelProvider, ProviderChat } from './provider.js';

/**
 * Any OpenAI-compatible server (vLLM, llama-server, LM Studio, …) at SANDBOT_MODEL_URL, through the
 * `openai` client: chat completions streamed as server-sent events, with usage; GET /models for checks.
 * The API key (SANDBOT_MODEL_API_KEY) is sent as a bearer token on every request, and nowhere else.
 */
export class OpenAIProvider implements ModelProvider {
  private readonly client: OpenAI;

  constructor(
    private readonly url: string,
    private readonly apiKey: string | undefined,
    timeoutMs: number,
  ) {
    this.client = new OpenAI({
      baseURL: url,
      // The client insists on a key; without one the Authorization header is left out (null removes it).
      apiKey: apiKey ?? 'no-key',
      ...(apiKey === undefined ? { defaultHeaders: { Authorization: null } } : {}),
      // Not from OPENAI_* variables of the worker's environment: only what the config says.
      organization: null,
      project: null,
      // The broker owns retries and the deadline; the client must not retry or print.
      maxRetries: 0,
      timeout: timeoutMs,
      logLevel: 'off',
    });
  }

  async chat(request: ProviderChat, signal: AbortSignal): Promise<ReplyState> {
    const stream = await this.client.chat.completions.create(
      {
        model: request.model,
        messages: toOpenAIMessages(request.messages),
        ...(request.tools.length > 0 ? { tools: request.tools as OpenAI.ChatCompletionTool[] } : {}),
        stream: true,
        stream_options: { include_usage: true },
      },
      { signal },
    );
    let state = emptyOpenAIReply();
    for await (const chunk of stream) {
      const next = addOpenAIChunk(state, chunk);
      state = next.state;
      if (next.delta !== '') request.onDelta?.(next.delta);
    }
    return toReplyState(state);
  }

  async serverVersion(signal: AbortSignal): Promise<string> {
    // OpenAI's API has no version endpoint: a server that lists its models answers.
    const models = await this.listModels(signal);
    return `OpenAI-compatible server, ${models.length} model${models.length === 1 ? '' : 's'}`;
  }

  async showModel(model: string, signal: AbortSignal): Promise<void> {
    const models = await this.listModels(signal);
    if (!models.includes(model)) {
      throw new ModelBrokerError('model_missing', openAIModelMissing(model, this.url));
    }
  }

  async listModels(signal: AbortSignal): Promise<string[]> {
    const ids: string[] = [];
    for await (const model of this.client.models.list({ signal })) {
      if (typeof model.id === 'string') ids.push(model.id);
      if (ids.length >= 1000) break;
    }
    return ids;
  }

  classify(error: unknown, call: { model?: string; timeoutMs: number }): ModelBrokerError {
    return classifyOpenAIError(error, { url: this.url, ...call, apiKeySet: this.apiKey !== undefined });
  }
}
