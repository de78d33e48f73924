import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FakeDiscord } from '../../testkit/fakes/fake-discord.js';
import type { FakeChatRequest, FakeOllama, FakeStep } from '../../testkit/fakes/fake-ollama.js';
import { type DiscordStack, startDiscordStack } from '../helpers/discord-stack.js';

/**
 * Discord end to end on real parts: the real discord.js client on a fake Discord → the gateway's
 * adapter → Redis queue → worker → the conversation's container (real Docker engine and sandbox image)
 * → model broker → fake Ollama → outbound queue → the adapter's REST calls. Only Discord and the model
 * are fakes.
 */

/** The model runs the user's text as a bash command and answers with the output; "LONG" gets a long answer. */
function script(request: FakeChatRequest): FakeStep {
  const last = request.messages.at(-1);
  if (last?.role === 'tool') return { reply: `tool said: ${last.content}` };
  const text = last?.content ?? '';
  if (text.includes('LONG'))
    return { reply: `${'A fairly long sentence of the answer. '.repeat(40)}\n\n`.repeat(4) };
  if (text.includes('SLOW')) return { hold: 'slow', reply: 'slow answer' };
  return { toolCalls: [{ name: 'bash', arguments: { command: text.replace(/^[^:]*: /, '') } }] };
}

let h: DiscordStack;
let fake: FakeDiscord;
let ollama: FakeOllama;

beforeAll(async () => {
  h = await startDiscordStack('discord-e2e', script);
  ({ fake, ollama } = h);
});

afterAll(async () => {
  await h?.stop();
});

const replyIn = (channelId: string, includes: string) =>
  fake.waitFor(
    () => fake.botMessages(channelId).find((m) => m.content.includes(includes)),
    `a reply containing ${JSON.stringify(includes)}`,
    30_000,
  );

describe('discord end to end', () => {
  it('/ask opens a thread, shows progress and answers there; a follow-up reaches the same sandbox', async () => {
    const ready = await fetch(`${h.stack.url}/readyz`).then((r) => r.json());
    expect(ready.checks.discord).toEqual({ ok: true, detail: 'connected' });

    const ask = fake.command({
      name: 'ask',
      channelId: fake.channels.general.id,
      options: { task: 'echo "made by $(id -u)" > /workspace/note.txt && cat /workspace/note.txt' },
    });
    const original = await fake.waitFor(
      () => ask.original?.content.includes('asked') && ask.original,
      'the task shown',
    );
    const thread = await fake.waitFor(() => fake.channel(original.id), 'the thread');
    const reply = await replyIn(thread.id, 'tool said:');
    expect(reply.content).toContain('made by 1000');
    const [progress] = fake.botMessages(thread.id);
    expect(progress?.history).toEqual(
      expect.arrayContaining([expect.stringContaining('bash: echo "made by')]),
    );
    expect(progress?.content).toMatch(/^✅ done \(1 step\)/);
    expect(fake.requests.some((r) => r.path === `/channels/${thread.id}/typing`)).toBe(true);

    // No mention needed in sandbot's thread; the file written by the first turn is there.
    fake.userMessage({ channelId: thread.id, content: 'cat /workspace/note.txt | tr a-z A-Z' });
    expect((await replyIn(thread.id, 'MADE BY')).content).toContain('MADE BY 1000');
  });

  it('answers a mention in a channel in a new thread, with files both ways, despite a 429', async () => {
    const csv = Buffer.from('a,b\n1,2\n3,4\n');
    const mention = fake.userMessage({
      channelId: fake.channels.general.id,
      content:
        'wc -l < /workspace/inbox/data.csv && mkdir -p /workspace/outbox && cp /workspace/inbox/data.csv /workspace/outbox/copy.csv',
      mention: true,
      attachments: [{ filename: 'data.csv', data: csv }],
    });
    const thread = await fake.waitFor(() => fake.channel(mention.id), 'the thread from the mention');
    // The first post in the thread (the progress message) is rate limited once.
    fake.failNext({
      method: 'POST',
      path: new RegExp(`^/channels/${thread.id}/messages$`),
      status: 429,
      retryAfter: 0.3,
    });
    const reply = await replyIn(thread.id, 'tool said:');
    expect(reply.content).toMatch(/tool said: exit code 0\n3$/);
    expect(reply.attachments.map((a) => [a.filename, a.data?.toString()])).toEqual([
      ['copy.csv', csv.toString()],
    ]);
    const posts = fake.requests.filter(
      (r) => r.method === 'POST' && r.path === `/channels/${thread.id}/messages`,
    );
    expect(posts).toHaveLength(3); // 429, progress, reply
    expect(fake.botMessages(thread.id)).toHaveLength(2);
  });

  it('works in a DM and splits a long reply', async () => {
    const dm = fake.dmChannel(fake.users.bob);
    fake.userMessage({ channelId: dm.id, content: 'tell me something LONG', author: fake.users.bob });
    await fake.waitFor(() => fake.botMessages(dm.id).length >= 3, 'a split reply', 30_000);
    const parts = fake.botMessages(dm.id).filter((m) => m.content.includes('fairly long'));
    expect(parts.length).toBeGreaterThanOrEqual(2);
    for (const part of parts) expect(part.content.length).toBeLessThanOrEqual(2000);
  });

  it('/run runs a command without the model; /reset wipes the conversation', async () => {
    const thread = fake.userThread(fake.channels.general.id, 'ops');
    const chatsBefore = ollama.chatRequests().length;
    const run = fake.command({
      name: 'run',
      channelId: thread.id,
      options: { command: 'echo ran-as-$(id -u) > /workspace/r.txt; cat /workspace/r.txt' },
    });
    await fake.waitFor(() => run.original?.content.includes('ran-as-1000'), 'the /run output', 30_000);
    expect(run.original?.content).toMatch(/^\$ echo ran-as/);
    expect(ollama.chatRequests().length).toBe(chatsBefore);

    const reset = fake.command({ name: 'reset', channelId: thread.id });
    await fake.waitFor(() => reset.original?.content.includes('reset'), 'the reset answer', 30_000);
    const check = fake.command({ name: 'run', channelId: thread.id, options: { command: 'ls /workspace' } });
    await fake.waitFor(() => check.original?.content.startsWith('$ ls'), 'the second /run', 30_000);
    expect(check.original?.content).not.toContain('r.txt');
  });

  it('/status and /stop act on a running turn', async () => {
    const thread = fake.userThread(fake.channels.general.id, 'slow work');
    fake.userMessage({ channelId: thread.id, content: 'something SLOW', mention: true });
    await ollama.waitForHold('slow');
    const status = fake.command({ name: 'status', channelId: thread.id });
    await fake.waitFor(() => status.original?.content || undefined, 'the status');
    expect(status.original?.content).toContain('Working on a turn now');
    const stop = fake.command({ name: 'stop', channelId: thread.id });
    await fake.waitFor(() => stop.original?.content || undefined, 'the stop answer');
    expect(stop.original?.content).toContain('Stopping');
    const stopped = await replyIn(thread.id, 'Stopped');
    expect(stopped.content).toContain(fake.users.alice.id);
    ollama.release('slow');
  });
});
