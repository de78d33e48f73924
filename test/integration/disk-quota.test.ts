import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sandboxNames } from '../../sandbox/host/driver/docker-spec.js';
import { sandboxDriverFromConfig } from '../../sandbox/host/driver/from-config.js';
import { webConversationId } from '../../src/contracts/conversation/id.js';
import { type FakeOllama, startFakeOllama } from '../../testkit/fakes/fake-ollama.js';
import { cleanInstance } from '../../testkit/instance.js';
import { testInstance } from '../../testkit/redis.js';
import { replyText, shellModel } from '../helpers/shell-model.js';
import { startStack, testConfig } from '../helpers/stack.js';

/** Size-capped /workspace and /session: filling one stops at its cap; the host and others are untouched. */

let diskDir: string;
let config: ReturnType<typeof testConfig>;
let ollama: FakeOllama;
let stack: Awaited<ReturnType<typeof startStack>>;

beforeAll(async () => {
  diskDir = await mkdtemp(join(tmpdir(), 'sandbot-disk-'));
  ollama = await startFakeOllama({ models: ['qwen2.5:7b'], script: shellModel });
  config = testConfig(testInstance('disk'), {
    OLLAMA_HOST: ollama.url,
    SANDBOX_WORKSPACE_MB: '24',
    SANDBOX_SESSION_MB: '8',
    SANDBOX_DISK_DIR: diskDir,
  });
  stack = await startStack(config);
});

afterAll(async () => {
  await stack?.stop();
  await ollama?.close();
  if (config) await cleanInstance(config);
  await rm(diskDir, { recursive: true, force: true });
});

const ask = (session: string, command: string) => replyText(stack.url, session, command);

describe('disk caps', () => {
  it('stops a workspace at its cap with a clear error, and the conversation goes on', async () => {
    const text = await ask(
      'filler',
      'echo keep > /workspace/keep.txt; head -c 64M /dev/zero > /workspace/fill; df -m /workspace | tail -1; ls /workspace',
    );
    expect(text).toContain('No space left on device');
    expect(text).toMatch(/inbox/);
    expect(await ask('filler', 'rm /workspace/fill && cat /workspace/keep.txt')).toContain('keep');
    // Another conversation has its own, empty, capped workspace.
    expect(await ask('neighbour', 'df -m /workspace | tail -1 | awk "{print \\$2}"; ls /workspace')).toMatch(
      /\n2[0-4]\n/,
    );
  });

  it('keeps the files across a stop, and wiping removes the image', async () => {
    const conversation = webConversationId('persist');
    await ask('persist', 'echo still-here > /workspace/p.txt');
    const driver = sandboxDriverFromConfig(config);
    await driver.stop(conversation);
    expect(await ask('persist', 'cat /workspace/p.txt')).toContain('still-here');
    const names = sandboxNames(config.SANDBOT_INSTANCE, conversation);
    const images = [names.workspaceVolume, names.sessionVolume].map((name) => join(diskDir, `${name}.img`));
    expect(images.every((image) => existsSync(image))).toBe(true);
    await driver.remove(conversation, { wipe: true });
    expect(images.some((image) => existsSync(image))).toBe(false);
  });
});
