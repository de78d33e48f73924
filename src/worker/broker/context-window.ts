import type { Redis } from 'ioredis';
import type { Config } from '../../contracts/config/schema.js';
import type { ConversationId } from '../../contracts/conversation/id.js';
import type { Logger } from '../../contracts/log/logger.js';
import type { ChatMessage } from '../../contracts/protocol/agent.js';
import { toolDefinitions } from '../../contracts/protocol/tools.js';
import {
  answerReserve,
  CHARS_PER_TOKEN,
  calibrate,
  estimateTokens,
  type FitPlan,
  fitMessages,
  messagesTokens,
  messageTokens,
  summaryAllowance,
} from './context-fit.js';
import {
  type AppliedFold,
  applyFold,
  type ContextFold,
  extendFold,
  foldMessage,
  MAX_SUMMARY_CHARS,
  summaryInstructions,
  transcript,
} from './context-fold.js';
import { ContextFoldStore } from './context-fold-store.js';
import { type ContextSizes, fixedContextSizes, OllamaContextSizes } from './context-size.js';
import type { ChatRequest, ChatResult } from './model-broker.js';
import { defaultSystemPrompt } from './system-prompt.js';

/**
 * The broker's requests, made to fit the model's context window (the I/O shell around context-fit.ts
 * and context-fold.ts): every request names the window, and a conversation too long for it has its
 * oldest messages folded into a summary the model writes, kept for the turns after.
 */

/** What a fold did, for the audit (`model.context_folded`). */
export interface ContextFolded {
  model: string;
  contextTokens: number;
  budgetTokens: number;
  /** Estimated prompt tokens before and after (system prompt and tools included). */
  tokensBefore: number;
  tokensAfter: number;
  /** Messages folded by this fold (the previous summary counts as one), and messages still sent. */
  folded: number;
  kept: number;
  /** Messages the conversation's fold stands for in all, and of those the ones left out unsummarized. */
  foldedTotal: number;
  omitted: number;
  summarized: boolean;
  summaryChars: number;
  /** Why there is no summary, when there is none. */
  error?: string;
  /** False when even the system prompt, the tools and the current step overflow the window. */
  fits: boolean;
  summaryPromptTokens?: number;
  summaryCompletionTokens?: number;
}

export interface FitContext {
  conversation: ConversationId;
  /** False when the turn has no model call left for a summary: the oldest messages are then left out. */
  summaryAllowed: boolean;
  onFold?: (event: ContextFolded) => void;
}

/** A fitted answer: `contextCalls` of its model calls made the summary (the rest answered). */
export type FittedChatResult = ChatResult & { contextCalls?: number };

export interface FittedChatRequest extends ChatRequest {
  /** The conversation the request is for: its fold is applied and kept. Absent: fitted, not kept. */
  fit?: FitContext;
}

export interface ContextFitterDeps {
  sizes: ContextSizes;
  folds?: ContextFoldStore;
  onStoreError?: (error: unknown) => void;
}

type Chat = (request: ChatRequest) => Promise<ChatResult>;
type Summary = { summary?: string; error?: string; result?: ChatResult };

/** Tokens of the built-in tools' definitions (sent with every request that offers tools). */
const BUILT_IN_TOOL_TOKENS = estimateTokens(JSON.stringify(toolDefinitions()));

export class ContextFitter {
  /** Per model: what its server's token counts showed of the estimate (see `calibrate`). */
  private readonly scales = new Map<string, number>();

  constructor(
    private readonly broker: { chat: Chat },
    private readonly deps: ContextFitterDeps,
  ) {}

  async chat(request: FittedChatRequest): Promise<FittedChatResult> {
    const { fit, ...plain } = request;
    const contextTokens = await this.deps.sizes.of(request.model);
    const scale = this.scales.get(request.model) ?? 1;
    const budgetTokens = Math.floor((contextTokens - answerReserve(contextTokens)) / scale);
    const previous = fit ? await this.deps.folds?.get(fit.conversation) : undefined;
    const applied = applyFold(request.messages, previous);
    const input = { messages: applied.messages, fixedTokens: fixedTokens(request), budgetTokens };
    const plan = fitMessages(input);
    if (plan.folded.length === 0) {
      return this.answer({ ...plain, messages: applied.messages, contextTokens }, input.fixedTokens);
    }
    const made: Summary =
      fit?.summaryAllowed === false
        ? { error: 'no model call left in the turn for a summary' }
        : await this.summarize(request, plan, { contextTokens, budgetTokens });
    const fold = extendFold(previous, applied, plan.folded, made.summary);
    if (fit) await this.deps.folds?.set(fit.conversation, fold).catch((e) => this.deps.onStoreError?.(e));
    const messages = [foldMessage(fold), ...plan.kept];
    fit?.onFold?.({
      ...{ model: request.model, contextTokens, budgetTokens, fits: plan.fits },
      ...foldCounts(input.fixedTokens, applied, plan, fold, messages),
      summarized: made.summary !== undefined,
      summaryChars: made.summary?.length ?? 0,
      ...(made.error ? { error: made.error } : {}),
      ...(made.result
        ? {
            summaryPromptTokens: made.result.promptTokens,
            summaryCompletionTokens: made.result.completionTokens,
          }
        : {}),
    });
    const answer = await this.answer({ ...plain, messages, contextTokens }, input.fixedTokens);
    return made.result ? addUsage(answer, made.result) : answer;
  }

  /** The request itself; its token count calibrates the estimates for the model's next requests. */
  private async answer(request: ChatRequest, fixed: number): Promise<ChatResult> {
    const answer = await this.broker.chat(request);
    if (answer.modelCalls === 1) {
      const estimated = fixed + messagesTokens(request.messages);
      const scale = this.scales.get(request.model) ?? 1;
      this.scales.set(request.model, calibrate(scale, estimated, answer.promptTokens));
    }
    return answer;
  }

  /** Forgets the conversation's fold (its history was wiped: a fold must not outlive it). */
  async forget(conversation: ConversationId): Promise<void> {
    await this.deps.folds?.clear(conversation);
  }

  /** One request asking the model to summarize the folded messages; failing, the reason why. */
  private async summarize(
    request: ChatRequest,
    plan: FitPlan,
    window: { contextTokens: number; budgetTokens: number },
  ): Promise<Summary> {
    const allowance = summaryAllowance(window.budgetTokens);
    const system = summaryInstructions(Math.floor(allowance / 2));
    const room = window.budgetTokens - estimateTokens(system) - 32;
    const text = transcript(plan.folded, Math.max(400, room * CHARS_PER_TOKEN));
    try {
      const result = await this.broker.chat({
        model: request.model,
        system,
        messages: [{ role: 'user', content: `Transcript to summarize:\n\n${text}` }],
        contextTokens: window.contextTokens,
        withoutTools: true,
        ...(request.signal ? { signal: request.signal } : {}),
      });
      const summary = result.message.content.trim();
      if (summary === '') return { error: 'the model answered the summary request with nothing', result };
      // Within what the plan left for it, so the request it goes into still fits.
      const maxChars = Math.min(MAX_SUMMARY_CHARS, (allowance - 24) * CHARS_PER_TOKEN);
      return { summary: summary.length > maxChars ? `${summary.slice(0, maxChars - 1)}…` : summary, result };
    } catch (error) {
      if (request.signal?.aborted) throw error;
      return { error: error instanceof Error ? error.message : String(error) };
    }
  }
}

/** The worker's broker, fitted: sizes from Ollama (capped by the setting), folds kept in Redis. */
export function contextFitterFor(
  config: Pick<
    Config,
    | 'OLLAMA_HOST'
    | 'SANDBOT_MODEL_PROVIDER'
    | 'SANDBOT_MODEL_CONTEXT_TOKENS'
    | 'SANDBOT_MODEL_TIMEOUT_SECONDS'
    | 'SANDBOT_INSTANCE'
  >,
  redis: Redis,
  broker: { chat: Chat },
  log: Logger,
): ContextFitter {
  const folds = new ContextFoldStore(redis, config.SANDBOT_INSTANCE);
  const onStoreError = (error: unknown) => log.warn({ err: error }, 'context fold not kept');
  // An OpenAI-compatible server does not say its models' window: the setting is it.
  if (config.SANDBOT_MODEL_PROVIDER === 'openai') {
    return new ContextFitter(broker, {
      sizes: fixedContextSizes(config.SANDBOT_MODEL_CONTEXT_TOKENS),
      folds,
      onStoreError,
    });
  }
  const sizes = new OllamaContextSizes(
    config.OLLAMA_HOST,
    config.SANDBOT_MODEL_CONTEXT_TOKENS,
    // Short: a request waits for it (an unanswered one falls back to the setting, and asks again later).
    Math.min(5, config.SANDBOT_MODEL_TIMEOUT_SECONDS) * 1000,
    (model, problem) =>
      log.warn({ model, problem }, 'context length unknown: using SANDBOT_MODEL_CONTEXT_TOKENS'),
  );
  return new ContextFitter(broker, { sizes, folds, onStoreError });
}

/** The system prompt and the tool definitions: in every request, whatever is folded. */
function fixedTokens(request: ChatRequest): number {
  const system = messageTokens({ role: 'system', content: request.system ?? defaultSystemPrompt() });
  if (request.withoutTools) return system;
  return system + BUILT_IN_TOOL_TOKENS + estimateTokens(JSON.stringify(request.tools ?? []));
}

function foldCounts(
  fixed: number,
  applied: AppliedFold,
  plan: FitPlan,
  fold: ContextFold,
  sent: ChatMessage[],
) {
  return {
    tokensBefore: fixed + messagesTokens(applied.messages),
    tokensAfter: fixed + messagesTokens(sent),
    folded: plan.folded.length,
    kept: plan.kept.length,
    foldedTotal: fold.folded,
    omitted: fold.omitted,
  };
}

/** The summary request counts against the turn's model calls and tokens like any other. */
function addUsage(answer: ChatResult, summary: ChatResult): FittedChatResult {
  return {
    ...answer,
    contextCalls: summary.modelCalls,
    modelCalls: answer.modelCalls + summary.modelCalls,
    promptTokens: answer.promptTokens + summary.promptTokens,
    completionTokens: answer.completionTokens + summary.completionTokens,
  };
}
