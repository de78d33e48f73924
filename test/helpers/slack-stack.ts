import type { Config } from '../../src/contracts/config/schema.js';
import { type FakeScript, startFakeOllama } from '../../testkit/fakes/fake-ollama.js';
import { type FakeSlack, startFakeSlack } from '../../testkit/fakes/fake-slack.js';
import { SlackSender } from '../../testkit/fakes/fake-slack-events.js';
import { cleanInstance } from '../../testkit/instance.js';
import { testInstance } from '../../testkit/redis.js';
import { slackSettings } from './slack-harness.js';
import { startStack, testConfig } from './stack.js';

export const SLACK_TEST_MODEL = 'qwen2.5:7b';

/**
 * The real gateway and worker with Bolt in Socket Mode against a fake Slack, and a scripted model.
 * `settings` adds to the config (it may need the fake's team id); `stop(holds)` releases the model
 * requests still held at those ids once the stack is down, then closes the fakes.
 */
export async function startSlackStack(
  label: string,
  script: FakeScript,
  settings: (fake: FakeSlack) => Record<string, string> = () => ({}),
) {
  const [fake, ollama] = await Promise.all([
    startFakeSlack(),
    startFakeOllama({ models: [SLACK_TEST_MODEL], script }),
  ]);
  const config: Config = testConfig(testInstance(label), {
    ...slackSettings(fake, 'socket'),
    OLLAMA_HOST: ollama.url,
    SANDBOT_MODEL: SLACK_TEST_MODEL,
    ...settings(fake),
  });
  const stack = await startStack(config).catch(async (error: unknown) => {
    await Promise.all([ollama.close(), fake.close()]);
    throw error;
  });
  return {
    fake,
    ollama,
    stack,
    config,
    sender: new SlackSender(fake, 'socket'),
    async stop(holds: string[] = []) {
      await stack.stop();
      for (const hold of holds) ollama.release(hold);
      await Promise.all([ollama.close(), fake.close()]);
      await cleanInstance(config);
    },
  };
}

export type SlackStack = Awaited<ReturnType<typeof startSlackStack>>;
