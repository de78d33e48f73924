import type { AuditActor, AuditInput } from '../../contracts/audit/events.js';
import type { ChatMessage } from '../../contracts/protocol/agent.js';
import { boundValue, capText } from '../../shared/audit/bound.js';
import type { SandbotMetrics } from '../../shared/metrics.js';

/** One model request's audit trail: the request, then its answer (with the calls it starts) or failure. */

/** Longest rendering of a tool call's arguments in the audit. */
export const ARG_CHARS = 4000;
const CONTENT_CHARS = 8000;

export interface ModelCallTrail {
  answered(result: {
    message: ChatMessage;
    promptTokens?: number;
    completionTokens?: number;
    /** Requests made for this answer (retries after an unreadable tool call, a summary of old messages). */
    modelCalls?: number;
    /** Of those, the ones that summarized old messages to fit the context window. */
    contextCalls?: number;
    /** Thinking taken out of the answer: counted, never shown. */
    thinkingChars?: number;
    /** The model that answered, when not the one asked (the fallback), and why. */
    model?: string;
    fallback?: { chosen: string; error: string };
  }): void;
  failed(error: string): void;
}

/** What a model call's trail records through (its turn's trail). */
export interface CallRecorder {
  actor: AuditActor;
  /** Whether message and model content may be recorded (SANDBOT_AUDIT_CONTENT). */
  content: boolean;
  metrics: SandbotMetrics;
  record(actor: AuditActor, kind: AuditInput['kind'], data: Record<string, unknown>): void;
  /** A call the model asked for, whose result the turn's trail waits for. */
  opened(call: { name: string; args: Record<string, unknown> }): void;
}

export interface ModelCall {
  requestId: string;
  model: string;
  messages: ChatMessage[];
}

export function modelCallTrail(trail: CallRecorder, call: ModelCall): ModelCallTrail {
  const { requestId, model, messages } = call;
  const began = performance.now();
  trail.record(trail.actor, 'model.request', {
    requestId,
    model,
    messages: messages.length,
    ...(trail.content ? { content: newInput(messages) } : {}),
  });
  const respond = (data: Record<string, unknown>, by = model) => {
    const durationMs = Math.round(performance.now() - began);
    trail.metrics.modelLatency.observe({ model: by, outcome: data.ok ? 'ok' : 'error' }, durationMs / 1000);
    trail.record(trail.actor, 'model.response', { requestId, model, durationMs, ...data });
  };
  return {
    answered: ({
      message,
      promptTokens,
      completionTokens,
      modelCalls,
      contextCalls,
      thinkingChars,
      ...routed
    }) => {
      const retries = (modelCalls ?? 1) - 1 - (contextCalls ?? 0);
      const calls = message.tool_calls ?? [];
      for (const c of calls) trail.opened({ name: c.function.name, args: c.function.arguments });
      const by = routed.model ?? model;
      if (promptTokens) trail.metrics.modelTokens.inc({ model: by, direction: 'prompt' }, promptTokens);
      if (completionTokens)
        trail.metrics.modelTokens.inc({ model: by, direction: 'completion' }, completionTokens);
      const fallback = routed.fallback
        ? { answeredBy: by, fallbackReason: capText(routed.fallback.error, 2000) }
        : {};
      respond(
        {
          ok: true,
          ...fallback,
          ...(promptTokens === undefined ? {} : { promptTokens }),
          ...(completionTokens === undefined ? {} : { completionTokens }),
          toolCalls: calls.map((c) => c.function.name),
          ...(retries > 0 ? { formatRetries: retries } : {}),
          ...(thinkingChars ? { thinkingChars } : {}),
          ...(trail.content ? { content: capText(message.content, CONTENT_CHARS) } : {}),
        },
        by,
      );
      // On record before the calls can have effects: a takeover tells the model which had started.
      for (const call of calls) {
        const args = boundValue(call.function.arguments, ARG_CHARS);
        trail.record('agent', 'tool.started', { name: call.function.name, args });
      }
    },
    failed: (error) => respond({ ok: false, toolCalls: [], error: capText(error, 2000) }),
  };
}

/** The messages after the model's last answer: what is new in this request. */
function newInput(messages: ChatMessage[]) {
  let from = messages.length;
  while (from > 0 && messages[from - 1]?.role !== 'assistant') from -= 1;
  return messages.slice(from).map((m) => ({
    role: m.role,
    content: capText(m.content, CONTENT_CHARS),
    ...(m.tool_name ? { tool: m.tool_name } : {}),
  }));
}
