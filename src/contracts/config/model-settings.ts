import { z } from 'zod';
import { ModelName, ModelRules } from '../policy/model-rules.js';
import { int, optionalSecret } from './setting-fields.js';

/** The model server the worker's broker calls, and which model answers. Spread into ConfigSchema. */
export const MODEL_SETTINGS = {
  SANDBOT_MODEL_PROVIDER: z
    .enum(['ollama', 'openai'])
    .default('ollama')
    .describe(
      'Which kind of model server the broker calls: ollama (its native API at OLLAMA_HOST) or openai (any OpenAI-compatible server at SANDBOT_MODEL_URL, e.g. vLLM, llama-server).',
    ),
  OLLAMA_HOST: z
    .string()
    .url()
    .default('http://127.0.0.1:11434')
    .describe('Ollama server the model broker calls (SANDBOT_MODEL_PROVIDER=ollama).'),
  SANDBOT_MODEL_URL: z
    .string()
    .url()
    .optional()
    .describe(
      'Base URL of the OpenAI-compatible API, e.g. http://gpu-box:8000/v1 (required with SANDBOT_MODEL_PROVIDER=openai).',
    ),
  SANDBOT_MODEL_API_KEY: optionalSecret.describe(
    'Sent as "Authorization: Bearer <key>" on every request to SANDBOT_MODEL_URL (openai provider); held by the worker only, never given to a sandbox.',
  ),
  SANDBOT_MODEL: z
    .string()
    .min(1)
    .default('qwen2.5:7b')
    .describe('Model used for every conversation no SANDBOT_MODEL_RULES rule covers.'),
  SANDBOT_MODEL_RULES: ModelRules.describe(
    'Model per place: "<conversation-prefix>=<model>;…" (prefixes match as in SANDBOT_NETWORK_RULES; the longest matching prefix wins). Default: SANDBOT_MODEL everywhere.',
  ),
  SANDBOT_MODEL_FALLBACK: z
    .preprocess((v) => (v === '' ? undefined : v), ModelName.optional())
    .describe(
      'Model that answers when the chosen one is missing, times out or fails twice in a row; the reply then says so. Default: none (the error is shown).',
    ),
  SANDBOT_MODEL_TIMEOUT_SECONDS: int(1, 3600)
    .default(120)
    .describe('Time limit of one model request (waiting for a turn at the model server not counted).'),
  SANDBOT_MODEL_CONCURRENCY: int(1, 1000)
    .default(4)
    .describe(
      'Model requests at once per model server, across all workers; more wait in line (the user sees "waiting for the model").',
    ),
  SANDBOT_MODEL_CONTEXT_TOKENS: int(1024, 1_048_576)
    .default(8192)
    .describe(
      "Context window of a model request, in tokens. Ollama: the most sent as num_ctx (the model's own length from /api/show is used when smaller); models report 32k-128k, and the server's memory grows with it. A server that does not report a length (OpenAI-compatible) is taken to have this one. A quarter is kept for the answer; a longer conversation has its oldest messages folded into a summary.",
    ),
};

/** The model settings that depend on each other; a problem in words naming the setting, or undefined. */
export function modelSettingsProblem(config: {
  SANDBOT_MODEL_PROVIDER: 'ollama' | 'openai';
  SANDBOT_MODEL_URL?: string | undefined;
}): string | undefined {
  if (config.SANDBOT_MODEL_PROVIDER === 'openai' && config.SANDBOT_MODEL_URL === undefined) {
    return 'config: SANDBOT_MODEL_URL is missing: SANDBOT_MODEL_PROVIDER=openai needs the base URL of the OpenAI-compatible API (e.g. http://gpu-box:8000/v1)';
  }
  return undefined;
}
