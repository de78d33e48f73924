import { z } from 'zod';

/**
 * How many tokens of context a model gets. Ollama says what a model supports in `/api/show`
 * (`model_info["<architecture>.context_length"]`, and a `num_ctx` its Modelfile may set), but serves
 * every request with its own small default (2048 or 4096) unless the request names `num_ctx`: a longer
 * prompt is then cut silently, system prompt first. The broker therefore always names it: the model's
 * length, capped by SANDBOT_MODEL_CONTEXT_TOKENS (the server's memory grows with it). A server that
 * does not report it (OpenAI-compatible ones) gets the setting itself.
 */

export interface ContextSizes {
  /** The context window to use with `model`, in tokens. */
  of(model: string): Promise<number>;
}

/** The parts of an /api/show answer read here; the rest is ignored. */
const ShowAnswer = z.object({
  model_info: z.record(z.string(), z.unknown()).optional(),
  parameters: z.string().optional(),
});

/** What the model supports, from an /api/show answer; undefined when it does not say. */
export function reportedContextLength(answer: unknown): number | undefined {
  const parsed = ShowAnswer.safeParse(answer);
  if (!parsed.success) return undefined;
  const info = parsed.data.model_info ?? {};
  const arch = info['general.architecture'];
  const fromInfo = typeof arch === 'string' ? positive(info[`${arch}.context_length`]) : undefined;
  const fromParameters = positive(Number(/^\s*num_ctx\s+(\d+)\s*$/m.exec(parsed.data.parameters ?? '')?.[1]));
  const lengths = [fromInfo, fromParameters].filter((n): n is number => n !== undefined);
  return lengths.length ? Math.min(...lengths) : undefined;
}

/** The window to use: what the model supports, at most `cap`; `cap` when the model does not say. */
export function contextWindow(reported: number | undefined, cap: number): number {
  return reported === undefined ? cap : Math.min(reported, cap);
}

function positive(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isInteger(value) && value > 0 ? value : undefined;
}

/** A fixed size for every model (servers that do not report one). */
export function fixedContextSizes(tokens: number): ContextSizes {
  return { of: async () => tokens };
}

/**
 * Asks Ollama once per model (a model's length does not change under one name often enough to matter
 * within a worker's life). A failed answer is not kept: the cap is used and the next call asks again.
 */
export class OllamaContextSizes implements ContextSizes {
  private readonly known = new Map<string, number>();
  private readonly host: string;

  constructor(
    host: string,
    private readonly cap: number,
    private readonly timeoutMs: number,
    private readonly onProblem: (model: string, problem: string) => void = () => undefined,
  ) {
    this.host = host.replace(/\/+$/, '');
  }

  async of(model: string): Promise<number> {
    const known = this.known.get(model);
    if (known !== undefined) return known;
    try {
      const response = await fetch(`${this.host}/api/show`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model }),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      if (!response.ok) throw new Error(`/api/show answered HTTP ${response.status}`);
      const reported = reportedContextLength(await response.json());
      if (reported === undefined) this.onProblem(model, 'the model does not report its context length');
      const size = contextWindow(reported, this.cap);
      this.known.set(model, size);
      return size;
    } catch (error) {
      this.onProblem(model, error instanceof Error ? error.message : String(error));
      return this.cap;
    }
  }
}
