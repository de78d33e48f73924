import { UnrecoverableError } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FileRef, InboundMessage } from '../../src/contracts/protocol/inbound.js';
import type { OutboundEvent } from '../../src/contracts/protocol/outbound.js';
import { BlobStore } from '../../src/shared/stores/blob-store.js';
import { waitFor } from '../../testkit/fakes/fake-slack.js';
import { personMessage } from '../../testkit/fakes/fake-slack-events.js';
import { withOutboundDelivery } from '../helpers/outbound.js';
import { type SlackHarness, startSlackHarness } from '../helpers/slack-harness.js';

/**
 * Outbound events into Slack through the adapter's deliver(), against the fake's state: one progress
 * message per turn, edited at a bounded rate; the reply in the thread; reactions; long text; files;
 * 429s; and that nothing is posted twice when a delivery is retried.
 */

const CHANNEL = 'C0DELIVERY';
let h: SlackHarness;
let turnCount = 0;

beforeAll(async () => {
  h = await startSlackHarness('slack-out', 'socket');
});
afterAll(async () => {
  await h?.stop();
});

/** A real intake (so the message has its 👀), and a turn id to answer it with. */
async function startTurn(channel = CHANNEL, text = 'do something') {
  const m = personMessage(h.fake, { channel, user: 'U0ALICE', text: `<@${h.fake.botUserId}> ${text}` });
  await h.sender.event(channel.startsWith('D') ? m.message : m.mention);
  const message = await waitFor('the message queued', async () =>
    (await h.queued()).find((q) => q.id.endsWith(m.ts)),
  );
  await waitFor('👀', () => h.fake.reactionsOn(channel, m.ts).includes('eyes'));
  turnCount += 1;
  return { message, turnId: `turn-${turnCount}`, ts: m.ts };
}

function events(message: InboundMessage, turnId: string) {
  const base = {
    conversation: message.conversation,
    platform: 'slack' as const,
    route: message.route,
    turnId,
  };
  return {
    progress: (step: string, text: string): OutboundEvent => ({
      ...base,
      id: `${turnId}:progress:${step}`,
      type: 'progress',
      text,
    }),
    reply: (text: string, files: FileRef[] = [], suffix = 'reply'): OutboundEvent => ({
      ...base,
      id: `${turnId}:${suffix}`,
      type: 'reply',
      text,
      files,
    }),
    error: (text: string): OutboundEvent => ({
      ...base,
      id: `${turnId}:error`,
      type: 'error',
      message: text,
    }),
  };
}

describe('Slack delivery', () => {
  it('posts one progress message, edits it at a bounded rate, then replies in the thread with ✅', async () => {
    const { message, turnId, ts } = await startTurn();
    const e = events(message, turnId);
    await h.adapter.deliver(e.progress('start', 'working…'));
    const [progress] = await waitFor('the progress message', () => {
      const posted = h.fake.botMessages(CHANNEL, ts);
      return posted.length === 1 ? posted : undefined;
    });
    expect(progress!.text).toContain('Working…');
    for (let step = 1; step <= 4; step += 1)
      await h.adapter.deliver(e.progress(`tool:${step}`, `bash: echo ${step}`));
    // The steps held back show up by themselves, while the turn still runs.
    await waitFor('a live edit with all four steps', () =>
      progress!.edits.some((t) => t.includes('Working') && t.includes('echo 4')),
    );
    await h.adapter.deliver(e.progress('tool:5', 'read_file: notes.txt'));
    await h.adapter.deliver(e.reply('All <done> & dusted.'));

    const posted = h.fake.botMessages(CHANNEL, ts);
    expect(posted.map((m) => m.text)).toEqual([progress!.text, 'All &lt;done&gt; &amp; dusted.']);
    expect(progress!.text).toMatch(/Done – 5 steps/);
    expect(progress!.text).toContain('read_file: notes.txt');
    // Edits before the final one are at least the coalescing interval apart.
    const updates = h.fake
      .callsOf('chat.update')
      .filter((c) => c.args.ts === progress!.ts)
      .map((c) => c.at);
    const live = updates.slice(0, -1);
    for (let i = 1; i < live.length; i += 1) expect(live[i]! - live[i - 1]!).toBeGreaterThanOrEqual(1400);
    expect(updates.length).toBeLessThan(6);
    expect(h.fake.reactionsOn(CHANNEL, ts)).toEqual(['white_check_mark']);
  });

  it('posts nothing twice when a delivery or a whole turn is retried', async () => {
    const { message, turnId, ts } = await startTurn();
    const e = events(message, turnId);
    for (let run = 0; run < 2; run += 1) {
      await h.adapter.deliver(e.progress('start', 'working…'));
      await h.adapter.deliver(e.progress('tool:1', 'bash: ls'));
      await h.adapter.deliver(e.reply('only once'));
    }
    expect(h.fake.botMessages(CHANNEL, ts).map((m) => m.text.split('\n')[0])).toEqual([
      ':white_check_mark: Done – 1 step',
      'only once',
    ]);
  });

  it('releases a failed post so the retry posts it, once', async () => {
    const { message, turnId, ts } = await startTurn();
    h.fake.failNext('chat.postMessage', { error: 'internal_error' });
    const reply = events(message, turnId).reply('second time lucky');
    await expect(h.adapter.deliver(reply)).rejects.toThrow(/internal_error/);
    await h.adapter.deliver(reply);
    await h.adapter.deliver(reply);
    expect(h.fake.botMessages(CHANNEL, ts).map((m) => m.text)).toEqual(['second time lucky']);
  });

  it('honours a 429 on chat.postMessage: the reply is delayed, then posted once', async () => {
    const { message, turnId, ts } = await startTurn();
    const callsBefore = h.fake.callsOf('chat.postMessage').length;
    h.fake.failNext('chat.postMessage', { status: 429, retryAfter: 1 });
    await h.adapter.deliver(events(message, turnId).reply('after the rate limit'));
    const calls = h.fake.callsOf('chat.postMessage').slice(callsBefore);
    expect(calls.map((c) => c.status)).toEqual([429, 200]);
    expect(calls[1]!.at - calls[0]!.at).toBeGreaterThanOrEqual(1000);
    expect(h.fake.botMessages(CHANNEL, ts).map((m) => m.text)).toEqual(['after the rate limit']);
  });

  it('rides out Slack answering 5xx for a while: the queue retries, the reply arrives once', async () => {
    const { message, turnId, ts } = await startTurn();
    // More failures than the web client's own retries: the outbound queue has to retry the delivery.
    h.fake.failNext('chat.postMessage', ...Array.from({ length: 7 }, () => ({ status: 503 })));
    await withOutboundDelivery(h.config, h.adapter, async (publish) => {
      await publish(events(message, turnId).reply('after the outage'));
      await waitFor('the reply after the outage', () => h.fake.botMessages(CHANNEL, ts).length > 0, 60_000);
      await new Promise((r) => setTimeout(r, 1500));
      expect(h.fake.botMessages(CHANNEL, ts).map((m) => m.text)).toEqual(['after the outage']);
      expect(h.fake.callsOf('chat.postMessage').filter((c) => c.status === 503)).toHaveLength(7);
    });
  }, 90_000);

  it('splits long replies into a few messages and sends very long ones as a file', async () => {
    const { message, turnId, ts } = await startTurn();
    const paragraph = (n: number) => `Paragraph ${n}: ${'lorem ipsum '.repeat(40).trim()}`;
    const long = Array.from({ length: 14 }, (_, i) => paragraph(i)).join('\n\n');
    const e = events(message, turnId);
    await h.adapter.deliver(e.reply(long));
    const parts = h.fake.botMessages(CHANNEL, ts);
    expect(parts.length).toBeGreaterThan(1);
    expect(parts.length).toBeLessThanOrEqual(4);
    for (const part of parts) expect(part.text.length).toBeLessThanOrEqual(4000);
    expect(parts.map((p) => p.text).join('\n\n')).toBe(long);

    const second = await startTurn();
    const huge = Array.from({ length: 80 }, (_, i) => paragraph(i)).join('\n\n');
    await h.adapter.deliver(events(second.message, second.turnId).reply(huge));
    const [filed] = h.fake.botMessages(CHANNEL, second.ts);
    expect(filed?.files.map((f) => f.filename)).toEqual(['reply.md']);
    expect(filed?.files[0]?.bytes.toString()).toBe(huge);
    expect(filed?.text).toContain('attached as reply.md');
  });

  it('uploads reply files into the thread, and says so when a file expired', async () => {
    const { message, turnId, ts } = await startTurn();
    const blobs = new BlobStore(h.redis, h.config.SANDBOT_INSTANCE);
    const bytes = Buffer.from('col1,col2\n1,2\n');
    const files: FileRef[] = [
      { name: 'result.csv', size: bytes.length, blobKey: await blobs.put(bytes) },
      { name: 'gone.txt', size: 3, blobKey: `${h.config.SANDBOT_INSTANCE}:blob:expired` },
    ];
    await h.adapter.deliver(events(message, turnId).reply('Here you go.', files));
    const posted = h.fake.botMessages(CHANNEL, ts);
    expect(posted.map((m) => m.text)).toEqual([
      'Here you go.',
      '',
      '_gone.txt could not be attached: it expired before it was delivered._',
    ]);
    expect(posted[1]?.files.map((f) => [f.filename, f.bytes.toString()])).toEqual([
      ['result.csv', bytes.toString()],
    ]);
  });

  it('reports an error with ❌, and a stop with 🛑', async () => {
    const failed = await startTurn();
    const e = events(failed.message, failed.turnId);
    await h.adapter.deliver(e.progress('start', 'working…'));
    await h.adapter.deliver(e.error('The model <qwen> is not pulled'));
    const [progress, error] = h.fake.botMessages(CHANNEL, failed.ts);
    expect(progress?.text).toMatch(/^:x: Failed/);
    expect(error?.text).toBe(':x: The model &lt;qwen&gt; is not pulled');
    expect(h.fake.reactionsOn(CHANNEL, failed.ts)).toEqual(['x']);

    const stopped = await startTurn();
    await h.adapter.deliver(
      events(stopped.message, stopped.turnId).reply('Stopped (asked by slack:U0ALICE).', [], 'stopped'),
    );
    expect(h.fake.reactionsOn(CHANNEL, stopped.ts)).toEqual(['octagonal_sign']);
  });

  it('answers a DM at its top level', async () => {
    const { message, turnId, ts } = await startTurn('D0DELIVERY', 'hello');
    await h.adapter.deliver(events(message, turnId).reply('hi!'));
    expect(h.fake.botMessages('D0DELIVERY').map((m) => m.text)).toEqual(['hi!']);
    expect(h.fake.reactionsOn('D0DELIVERY', ts)).toEqual(['white_check_mark']);
  });

  it('refuses for good an event without a Slack route', async () => {
    const event: OutboundEvent = {
      id: 'x:reply',
      type: 'reply',
      text: 'hi',
      conversation: 'slack:T0FAKE:C0X:dm' as OutboundEvent['conversation'],
      platform: 'slack',
      route: {},
    };
    await expect(h.adapter.deliver(event)).rejects.toBeInstanceOf(UnrecoverableError);
  });
});
