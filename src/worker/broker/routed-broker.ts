import type { ConversationId } from '../../contracts/conversation/id.js';
import { ModelBrokerError } from './errors.js';
import {
  afterFailure,
  bothFailedMessage,
  fallbackFor,
  PASS_OVER_MS,
  passesOver,
  unavailableReason,
} from './model-choice.js';
import type { AcquireOptions, ModelSlot } from './model-gate.js';

/**
 * The broker the turns use: a request waits for a slot at the model server (model-gate.ts), then asks
 * the model it names; when that one is missing, times out or fails twice, the fallback answers
 * (model-choice.ts decides). A thin shell around any `chat`: the providers behind it do the talking.
 */

/** What is routed: any request naming its model, with a signal to stop it. */
export interface RoutableRequest {
  model: string;
  signal?: AbortSignal;
  /** Called once if the request has to wait for the model server, with how many are ahead. */
  onWait?: (ahead: number) => void;
}

/** The fallback answered: which model was chosen, and why it did not answer. */
export interface FallbackUsed {
  chosen: string;
  reason: string;
  /** The chosen model's last error, for the audit. */
  error: string;
}

export type Routed<R> = R & { model: string; fallback?: FallbackUsed };

export interface ChatBackend<Q, R> {
  chat(request: Q): Promise<R>;
  /** Forgets what it kept of a conversation (e.g. its folded history), when it has such a thing. */
  forget?(conversation: ConversationId): Promise<void>;
}

export interface RoutedBrokerOptions {
  /** SANDBOT_MODEL_FALLBACK. */
  fallback?: string;
  /** The model server's slots; absent: no limit. */
  gate?: { acquire(options: AcquireOptions): Promise<ModelSlot> };
  /** The clock (ms) for passing over a model that timed out. */
  now?: () => number;
}

export class RoutedBroker<Q extends { model: string; signal?: AbortSignal }, R> {
  /** Chosen models that timed out lately: until when they are passed over, and why. */
  private readonly passedOver = new Map<string, FallbackUsed & { until: number }>();

  constructor(
    private readonly backend: ChatBackend<Q, R>,
    private readonly options: RoutedBrokerOptions = {},
  ) {}

  forget(conversation: ConversationId): Promise<void> {
    return this.backend.forget?.(conversation) ?? Promise.resolve();
  }

  async chat(request: Q & Omit<RoutableRequest, 'model'>): Promise<Routed<R>> {
    const { onWait, ...rest } = request;
    const asked = rest as unknown as Q;
    // Waiting for a slot is not the model's time: the request's own deadline starts inside `chat`.
    const slot = await this.options.gate?.acquire({
      ...(request.signal ? { signal: request.signal } : {}),
      ...(onWait ? { onWait } : {}),
    });
    try {
      return await this.answer(asked);
    } finally {
      await slot?.release().catch(() => undefined);
    }
  }

  private async answer(request: Q): Promise<Routed<R>> {
    const fallback = fallbackFor(request.model, this.options.fallback);
    const now = this.options.now ?? Date.now;
    const over = this.passedOver.get(request.model);
    if (fallback && over && over.until > now()) return this.answerWith(request, fallback, over);
    let failures = 0;
    for (;;) {
      try {
        const answer = await this.backend.chat(request);
        this.passedOver.delete(request.model);
        return { ...answer, model: request.model };
      } catch (error) {
        const kind = kindOf(error);
        const next = afterFailure(kind, failures, fallback !== undefined);
        failures += 1;
        if (next === 'give_up' || fallback === undefined) throw error;
        if (next === 'retry') continue;
        const used = {
          chosen: request.model,
          reason: unavailableReason(kind, failures),
          error: words(error),
        };
        if (passesOver(kind)) this.passedOver.set(request.model, { ...used, until: now() + PASS_OVER_MS });
        return this.answerWith(request, fallback, used);
      }
    }
  }

  private async answerWith(request: Q, fallback: string, used: FallbackUsed): Promise<Routed<R>> {
    const { chosen, reason, error } = used;
    const answer = await this.fallback(request, fallback, used);
    return { ...answer, model: fallback, fallback: { chosen, reason, error } };
  }

  private async fallback(request: Q, model: string, used: FallbackUsed): Promise<R> {
    try {
      return await this.backend.chat({ ...request, model });
    } catch (error) {
      if (kindOf(error) === 'cancelled') throw error;
      const message = bothFailedMessage(
        { model: used.chosen, error: used.error },
        { model, error: words(error) },
      );
      throw new ModelBrokerError(error instanceof ModelBrokerError ? error.kind : 'server_error', message, {
        cause: error,
      });
    }
  }
}

function kindOf(error: unknown): string {
  return error instanceof ModelBrokerError ? error.kind : 'unknown';
}

function words(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
