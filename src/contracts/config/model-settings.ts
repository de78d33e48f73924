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
};
