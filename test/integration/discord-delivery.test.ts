import { randomBytes } from 'node:crypto';
import { UnrecoverableError } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConversationId } from '../../src/contracts/conversation/id.js';
import type { FileRef } from '../../src/contracts/protocol/inbound.js';
import type { OutboundEvent } from '../../src/contracts/protocol/outbound.js';
import { type DiscordHarness, startDiscordHarness } from '../helpers/discord-harness.js';
import { withOutboundDelivery } from '../helpers/outbound.js';

/**
 * Events out: `deliver` with the events a worker emits, against the fake Discord's REST API: the
 * progress message and its edits, replies split or as a file, files attached, idempotency by event id,
 * a 429 waited out, a failure retried.
 */

let h: DiscordHarness;

beforeAll(async () => {
  h = await startDiscordHarness();
});

afterAll(async () => {
  await h?.stop();
});

function turnIn(channelId: string, extraRoute: Record<string, string | number> = {}) {
  const turnId = `turn-${randomBytes(4).toString('hex')}`;
  const base = {
    conversation: ConversationId.parse(`discord:${h.fake.guild.id}:${channelId}`),
    platform: 'discord' as const,
    route: { channelId, guildId: h.fake.guild.id, ...extraRoute },
    turnId,
  };
  return {
    progress: (step: string, text: string): OutboundEvent => ({
      ...base,
      id: `${turnId}:progress:${step}`,
      type: 'progress',
      text,
    }),
    reply: (text: string, files?: FileRef[]): OutboundEvent => ({
      ...base,
      id: `${turnId}:reply`,
      type: 'reply',
      text,
      ...(files ? { files } : {}),
    }),
    error: (message: string): OutboundEvent => ({ ...base, id: `${turnId}:error`, type: 'error', message }),
  };
}

describe('discord adapter: delivery', () => {
  it('keeps one progress message per turn, edits it with the steps, types, then posts the reply once', async () => {
    const { fake, adapter } = h;
    const thread = fake.userThread(fake.channels.general.id, 'progress');
    const turn = turnIn(thread.id);
    const events = [
      turn.progress('start', 'working…'),
      turn.progress('tool:1', 'bash: ls -la'),
      turn.progress('tool:2', 'read_file: notes.txt'),
      turn.reply('There are 3 files.'),
    ];
    await adapter.deliver(events[0]!);
    const progress = await fake.waitFor(() => fake.botMessages(thread.id)[0], 'the progress message');
    expect(progress.content).toBe('⏳ working…');
    await adapter.deliver(events[1]!);
    await adapter.deliver(events[2]!);
    await fake.waitFor(() => progress.content.includes('read_file: notes.txt'), 'the edit with both steps');
    expect(progress.content).toBe('⏳ working…\n```\nbash: ls -la\nread_file: notes.txt\n```');
    await adapter.deliver(events[3]!);
    expect(fake.botMessages(thread.id).map((m) => m.content)).toEqual([
      '✅ done (2 steps)\n```\nbash: ls -la\nread_file: notes.txt\n```',
      'There are 3 files.',
    ]);
    expect(fake.requests.some((r) => r.method === 'POST' && r.path === `/channels/${thread.id}/typing`)).toBe(
      true,
    );
    // A retried turn emits the same ids again: nothing new appears.
    for (const event of events) await adapter.deliver(event);
    expect(fake.botMessages(thread.id)).toHaveLength(2);
    expect(
      fake.requests.filter((r) => r.method === 'POST' && r.path === `/channels/${thread.id}/messages`),
    ).toHaveLength(2);
  });

  it('never lets a reply ping anyone', async () => {
    const { fake, adapter } = h;
    const turn = turnIn(fake.channels.general.id);
    await adapter.deliver(turn.reply('@everyone look'));
    const post = fake.requests
      .filter((r) => r.path === `/channels/${fake.channels.general.id}/messages`)
      .at(-1);
    expect(post?.body).toMatchObject({ content: '@everyone look', allowed_mentions: { parse: [] } });
  });

  it('splits a long reply into messages under 2000 characters, and sends a very long one as a file', async () => {
    const { fake, adapter } = h;
    const thread = fake.userThread(fake.channels.general.id, 'long');
    const paragraph = `${'word '.repeat(150).trim()}\n\n`;
    const code = `\`\`\`ts\n${'const x = 1;\n'.repeat(120)}\`\`\`\n`;
    const long = `${paragraph.repeat(3)}${code}${paragraph}`;
    await adapter.deliver(turnIn(thread.id).reply(long));
    const parts = fake.botMessages(thread.id).map((m) => m.content);
    expect(parts.length).toBeGreaterThanOrEqual(3);
    for (const part of parts) expect(part.length).toBeLessThanOrEqual(2000);
    // Code cut in two is closed and reopened, so every part renders.
    for (const part of parts) expect((part.match(/```/g) ?? []).length % 2).toBe(0);
    expect(
      parts
        .join('')
        .replace(/```(ts)?\n?/g, '')
        .replace(/\s+/g, ''),
    ).toBe(long.replace(/```(ts)?\n?/g, '').replace(/\s+/g, ''));

    const huge = 'line of output\n'.repeat(1000);
    await adapter.deliver(turnIn(thread.id).reply(huge));
    const last = fake.botMessages(thread.id).at(-1)!;
    expect(last.content).toContain('attached as reply.md');
    expect(last.attachments).toHaveLength(1);
    expect(last.attachments[0]?.filename).toBe('reply.md');
    expect(last.attachments[0]?.data?.toString()).toBe(huge);
  });

  it('attaches the reply’s files from the blob store', async () => {
    const { fake, adapter, deps } = h;
    const thread = fake.userThread(fake.channels.general.id, 'files');
    const bytes = Buffer.from('col\n1\n2\n');
    const blobKey = await deps.blobs.put(bytes);
    await adapter.deliver(
      turnIn(thread.id).reply('Here is the table.', [
        { name: 'table.csv', size: bytes.length, blobKey },
        { name: 'gone.txt', size: 3, blobKey: `${h.config.SANDBOT_INSTANCE}:blob:expired` },
      ]),
    );
    const reply = fake.botMessages(thread.id).at(-1)!;
    expect(reply.content).toBe('Here is the table.\n\n(gone.txt expired before it could be sent)');
    expect(reply.attachments.map((a) => [a.filename, a.data?.toString()])).toEqual([
      ['table.csv', 'col\n1\n2\n'],
    ]);
  });

  it('rides out Discord answering 5xx for a while: the queue retries, the reply arrives once', async () => {
    const { fake, adapter, config } = h;
    const thread = fake.userThread(fake.channels.general.id, 'outage');
    const posts = new RegExp(`^/channels/${thread.id}/messages$`);
    for (let i = 0; i < 5; i++) fake.failNext({ method: 'POST', path: posts, status: 503 });
    await withOutboundDelivery(config, adapter, async (publish) => {
      await publish(turnIn(thread.id).reply('after the outage'));
      await fake.waitFor(() => fake.botMessages(thread.id).length > 0, 'the reply after the outage', 60_000);
      await new Promise((r) => setTimeout(r, 1500));
      expect(fake.botMessages(thread.id).map((m) => m.content)).toEqual(['after the outage']);
    });
  }, 90_000);

  it('waits out a 429 on posting and delivers exactly once', async () => {
    const { fake, adapter } = h;
    const thread = fake.userThread(fake.channels.general.id, 'rate limited');
    fake.failNext({
      method: 'POST',
      path: new RegExp(`^/channels/${thread.id}/messages$`),
      status: 429,
      retryAfter: 0.5,
    });
    await adapter.deliver(turnIn(thread.id).reply('after the wait'));
    const posts = fake.requests.filter(
      (r) => r.method === 'POST' && r.path === `/channels/${thread.id}/messages`,
    );
    expect(posts).toHaveLength(2); // the 429, then the retry
    expect(fake.botMessages(thread.id).map((m) => m.content)).toEqual(['after the wait']);
  });

  it('throws when Discord fails, so the queue retries, and the retry posts once', async () => {
    const { fake, adapter } = h;
    const thread = fake.userThread(fake.channels.general.id, 'failing');
    const event = turnIn(thread.id).error('The model is not pulled.');
    fake.failNext({
      method: 'POST',
      path: new RegExp(`^/channels/${thread.id}/messages$`),
      status: 403,
      code: 50013,
    });
    await expect(adapter.deliver(event)).rejects.toThrow();
    expect(fake.botMessages(thread.id)).toHaveLength(0);
    await adapter.deliver(event);
    await adapter.deliver(event);
    expect(fake.botMessages(thread.id).map((m) => m.content)).toEqual(['⚠️ The model is not pulled.']);
  });

  it('answers a command by editing its response while the token lives, and in the channel after', async () => {
    const { fake, adapter } = h;
    const thread = fake.userThread(fake.channels.general.id, 'commands');
    // Alice starts the conversation, so that /reset is hers to use (no admin role is configured here).
    fake.userMessage({ channelId: thread.id, content: 'commands, please', mention: true });
    await h.waitForQueued((m) => m.text === 'commands, please', 'alice’s first message');
    const run = fake.command({ name: 'reset', channelId: thread.id });
    await fake.waitFor(() => run.original, 'the deferred response');
    const live = turnIn(thread.id, {
      applicationId: fake.applicationId,
      interactionToken: run.token,
      interactionExpiresAt: Date.now() + 15 * 60_000,
    });
    await adapter.deliver(live.progress('start', 'working…'));
    await fake.waitFor(() => run.original?.content === '⏳ working…', 'the progress in the response');
    await adapter.deliver(live.reply('Conversation reset.'));
    expect(run.original?.history).toEqual(['⏳ working…', 'Conversation reset.']);
    expect(fake.botMessages(thread.id).filter((m) => m !== run.original)).toHaveLength(0);

    const expired = turnIn(thread.id, {
      applicationId: fake.applicationId,
      interactionToken: run.token,
      interactionExpiresAt: Date.now() - 1,
    });
    await adapter.deliver(expired.reply('late answer'));
    expect(fake.botMessages(thread.id).at(-1)?.content).toBe('late answer');
    expect(run.original?.content).toBe('Conversation reset.');
  });

  it('refuses an event without a Discord route for good (no retries)', async () => {
    const event = { ...turnIn(h.fake.channels.general.id).reply('x'), route: {} };
    await expect(h.adapter.deliver(event)).rejects.toBeInstanceOf(UnrecoverableError);
  });
});
