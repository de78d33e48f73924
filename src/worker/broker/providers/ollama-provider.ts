import { type Message, Ollama } from 'ollama';
import { classifyOllamaError, type ModelBrokerError } from '../errors.js';
import { ollamaFetch } from '../ollama-fetch.js';
import { addChunk, emptyReply, type ReplyState } from '../reply.js';
import type { ModelProvider, ProviderChat } from './provider.js';

/** Ollama's native API (/api/chat streamed as NDJSON: tool calling works there), at OLLAMA_HOST. */
export class OllamaProvider implements ModelProvider {
  constructor(private readonly host: string) {}

  async chat(request: ProviderChat, signal: AbortSignal): Promise<ReplyState> {
    const stream = await this.client(signal).chat({
      model: request.model,
      messages: request.messages as Message[],
      tools: request.tools,
      stream: true,
      ...(request.contextTokens !== undefined ? { options: { num_ctx: request.contextTokens } } : {}),
    });
    let state = emptyReply();
    for await (const chunk of stream) {
      const next = addChunk(state, chunk);
      state = next.state;
      if (next.delta !== '') request.onDelta?.(next.delta);
    }
    return state;
  }

  async serverVersion(signal: AbortSignal): Promise<string> {
    const { version } = await this.client(signal).version();
    if (typeof version !== 'string') throw new SyntaxError('/api/version answered without a version');
    return version;
  }

  async showModel(model: string, signal: AbortSignal): Promise<void> {
    await this.client(signal).show({ model });
  }

  async listModels(signal: AbortSignal): Promise<string[]> {
    const { models } = await this.client(signal).list();
    return Array.isArray(models) ? models.map((m) => String(m.name)) : [];
  }

  classify(error: unknown, call: { model?: string; timeoutMs: number }): ModelBrokerError {
    return classifyOllamaError(error, { host: this.host, ...call });
  }

  private client(signal: AbortSignal): Ollama {
    // One client per request: the client cannot take a signal, so it goes into its fetch.
    return new Ollama({ host: this.host, fetch: ollamaFetch(signal) });
  }
}
