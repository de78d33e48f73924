import type { Config } from '../../src/contracts/config/schema.js';
import { type FakeDiscord, startFakeDiscord } from '../../testkit/fakes/fake-discord.js';
import { type FakeOllama, type FakeScript, startFakeOllama } from '../../testkit/fakes/fake-ollama.js';
import { cleanInstance } from '../../testkit/instance.js';
import { testInstance } from '../../testkit/redis.js';
import { startStack, testConfig } from './stack.js';

export const DISCORD_TEST_MODEL = 'qwen2.5:7b';

/** The real gateway and worker with the Discord adapter against a fake Discord, and a scripted model. */
export async function startDiscordStack(
  label: string,
  script: FakeScript,
  /** More settings for the stack's config. */
  settings: Record<string, string> = {},
) {
  const [fake, ollama] = await Promise.all([
    startFakeDiscord(),
    startFakeOllama({ models: [DISCORD_TEST_MODEL], script }),
  ]);
  const config: Config = testConfig(testInstance(label), {
    DISCORD_TOKEN: fake.token,
    DISCORD_APPLICATION_ID: fake.applicationId,
    DISCORD_API_URL: fake.apiUrl,
    DISCORD_GUILD_IDS: fake.guild.id,
    DISCORD_ADMIN_ROLE: fake.roles.admin,
    SANDBOT_WEB_CHAT: 'off',
    OLLAMA_HOST: ollama.url,
    SANDBOT_MODEL: DISCORD_TEST_MODEL,
    ...settings,
  });
  const stack = await startStack(config);
  return {
    fake: fake as FakeDiscord,
    ollama: ollama as FakeOllama,
    stack,
    config,
    async stop() {
      await stack.stop();
      await Promise.all([ollama.close(), fake.close()]);
      await cleanInstance(config);
    },
  };
}

export type DiscordStack = Awaited<ReturnType<typeof startDiscordStack>>;
