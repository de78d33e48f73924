import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConversationStore } from '../../src/shared/queue/conversation-store.js';
import { InboundQueue } from '../../src/shared/queue/inbound-queue.js';
import { BlobStore } from '../../src/shared/stores/blob-store.js';
import { type FakeOllama, startFakeOllama } from '../../testkit/fakes/fake-ollama.js';
import { cleanInstance } from '../../testkit/instance.js';
import { REDIS_URL, testInstance } from '../../testkit/redis.js';
import { webMessage } from '../helpers/messages.js';
import { shellModel } from '../helpers/shell-model.js';
import { openSse } from '../helpers/sse.js';
import { startStack, testConfig } from '../helpers/stack.js';

/** Attachments reach /workspace/inbox; files the agent writes to /workspace/outbox come back with the reply. */

const config = testConfig(testInstance('files'));
let ollama: FakeOllama;
let stack: Awaited<ReturnType<typeof startStack>>;
let redis: Redis;
let blobs: BlobStore;
let inbound: InboundQueue;

beforeAll(async () => {
  ollama = await startFakeOllama({ models: ['qwen2.5:7b'], script: shellModel });
  Object.assign(config, { OLLAMA_HOST: ollama.url, SANDBOT_FILE_MAX_BYTES: 2048 });
  stack = await startStack(config);
  redis = new Redis(REDIS_URL);
  blobs = new BlobStore(redis, config.SANDBOT_INSTANCE);
  inbound = new InboundQueue(
    redis,
    new ConversationStore(redis, config.SANDBOT_INSTANCE),
    config.SANDBOT_INSTANCE,
  );
});

afterAll(async () => {
  await inbound?.close();
  redis?.disconnect();
  await stack?.stop();
  await ollama?.close();
  await cleanInstance(config);
});

const submit = (text: string, files: { name: string; size: number; blobKey: string }[] = []) =>
  inbound.submit(webMessage('files', text, { files }));

describe('files in and out of a sandbox', () => {
  it('puts attachments in /workspace/inbox and hands back new outbox files', async () => {
    const sse = await openSse(`${stack.url}/api/conversations/files/events`);
    try {
      const bytes = Buffer.from('hello from chat\n');
      await submit(
        'cat /workspace/inbox/note.txt && mkdir -p /workspace/outbox && tr a-z A-Z < /workspace/inbox/note.txt > /workspace/outbox/shout.txt && head -c 5000 /dev/zero > /workspace/outbox/big.bin',
        [{ name: 'note.txt', size: bytes.length, blobKey: await blobs.put(bytes) }],
      );
      const reply = await sse.waitFor((e) => e.type === 'reply');
      if (reply.type !== 'reply') throw new Error('not a reply');
      expect(reply.text).toContain('hello from chat');
      expect(reply.files?.map((f) => f.name)).toEqual(['shout.txt']);
      expect((await blobs.get(reply.files![0]!.blobKey))?.toString()).toBe('HELLO FROM CHAT\n');
      // The file over SANDBOT_FILE_MAX_BYTES is named, not sent.
      expect(reply.text).toContain('big.bin (over the size limit)');

      // The next turn hands back only what changed during it.
      await submit('echo again > /workspace/outbox/second.txt');
      const next = await sse.waitFor((e) => e.type === 'reply' && e.id !== reply.id);
      expect(next.type === 'reply' && next.files?.map((f) => f.name)).toEqual(['second.txt']);
    } finally {
      sse.close();
    }
  });
});
