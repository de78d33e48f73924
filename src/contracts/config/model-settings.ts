import { z } from 'zod';
import { int } from './setting-fields.js';

/** The model server the worker's broker calls, and which model answers. Spread into ConfigSchema. */
export const MODEL_SETTINGS = {
  OLLAMA_HOST: z
    .string()
    .url()
    .default('http://127.0.0.1:11434')
    .describe('Ollama server the model broker calls.'),
  SANDBOT_MODEL: z.string().min(1).default('qwen2.5:7b').describe('Model used for every conversation.'),
  SANDBOT_MODEL_TIMEOUT_SECONDS: int(1, 3600).default(120).describe('Time limit of one model request.'),
  SANDBOT_MODEL_CONTEXT_TOKENS: int(1024, 1_048_576)
    .default(8192)
    .describe(
      "Context window of a model request, in tokens. Ollama: the most sent as num_ctx (the model's own length from /api/show is used when smaller); models report 32k-128k, and the server's memory grows with it. A server that does not report a length (OpenAI-compatible) is taken to have this one. A quarter is kept for the answer; a longer conversation has its oldest messages folded into a summary.",
    ),
};
