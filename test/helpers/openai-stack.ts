import type { Config } from '../../src/contracts/config/schema.js';
import type { WorkerOverrides } from '../../src/worker/start-worker.js';
import { type FakeOpenAI, type FakeOpenAIScript, startFakeOpenAI } from '../../testkit/fakes/fake-openai.js';
import { cleanInstance } from '../../testkit/instance.js';
import { startStack } from './stack.js';

export type OpenAIStack = Awaited<ReturnType<typeof startStack>> & { openai: FakeOpenAI };

/**
 * Like startScriptedStack, with SANDBOT_MODEL_PROVIDER=openai: a fake OpenAI-compatible server playing
 * `script` (serving the config's model, requiring `apiKey` when given), and the stack against it.
 */
export async function startOpenAIStack(
  config: Config,
  script: FakeOpenAIScript,
  options: { apiKey?: string; overrides?: WorkerOverrides } = {},
): Promise<OpenAIStack> {
  const openai = await startFakeOpenAI({
    models: [config.SANDBOT_MODEL],
    script,
    ...(options.apiKey !== undefined ? { apiKey: options.apiKey } : {}),
  });
  Object.assign(config, {
    SANDBOT_MODEL_PROVIDER: 'openai',
    SANDBOT_MODEL_URL: openai.url,
    SANDBOT_MODEL_API_KEY: options.apiKey,
  });
  const stack = await startStack(config, options.overrides).catch(async (error: unknown) => {
    await openai.close();
    throw error;
  });
  return {
    ...stack,
    openai,
    async stop() {
      await stack.stop();
      await openai.close();
      await cleanInstance(config);
    },
  };
}
