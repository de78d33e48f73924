import type { Tool } from 'ollama';
import type { ChatMessage } from '../../../contracts/protocol/agent.js';
import type { ModelBrokerError } from '../errors.js';
import type { ReplyState } from '../reply.js';

/**
 * One kind of model server behind the broker (SANDBOT_MODEL_PROVIDER). The broker keeps what is common
 * (deadline, retries after unreadable calls, shaping the answer); a provider only speaks its server's
 * API and words its errors. Every call gets the signal that bounds it.
 */
export interface ModelProvider {
  /** One streamed chat request, folded into the common state (shaped by the broker). */
  chat(request: ProviderChat, signal: AbortSignal): Promise<ReplyState>;
  /** The server answers: its version, or what identifies it. */
  serverVersion(signal: AbortSignal): Promise<string>;
  /** Resolves when the server has `model`; throws (classified to model_missing) when not. */
  showModel(model: string, signal: AbortSignal): Promise<void>;
  /** The models the server has. */
  listModels(signal: AbortSignal): Promise<string[]>;
  /** Any error of the above as a ModelBrokerError, in words an operator can act on. */
  classify(error: unknown, call: { model?: string; timeoutMs: number }): ModelBrokerError;
}

export interface ProviderChat {
  model: string;
  /** The whole history, system prompt first. */
  messages: ChatMessage[];
  /** In the shape both APIs share: `{ type: 'function', function: { name, description, parameters } }`. */
  tools: Tool[];
  /** The context window to ask for, when the caller knows it (Ollama's options.num_ctx). */
  contextTokens?: number;
  /** Each piece of streamed text, for progress. */
  onDelta?: (text: string) => void;
}
