import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConversationId } from '../../src/contracts/conversation/id.js';
import type { FakeDiscord } from '../../testkit/fakes/fake-discord.js';
import { type DiscordStack, startDiscordStack } from '../helpers/discord-stack.js';
import { auditOf, sleep } from '../helpers/schedules.js';

/**
 * `/schedule` and `/schedules` through the real discord.js client against the fake Discord, with the
 * real gateway, worker and engine: a schedule made in a DM runs there, marked as scheduled; only its
 * maker or an admin manages it.
 */

let h: DiscordStack;
let fake: FakeDiscord;

beforeAll(async () => {
  h = await startDiscordStack(
    'sched-discord',
    (request) => ({ reply: `did: ${request.messages.at(-1)?.content ?? ''}` }),
    { SANDBOT_SCHEDULE_MIN_SECONDS: '2' },
  );
  fake = h.fake;
}, 120_000);

afterAll(async () => {
  await h?.stop();
});

/** Runs a command; resolves with what its response says in the end (deferred, then edited, or at once). */
async function run(
  name: string,
  channelId: string,
  user: FakeDiscord['users'][keyof FakeDiscord['users']],
  options: Record<string, string> = {},
): Promise<string> {
  const command = fake.command({ name, channelId, user, options });
  // A deferred response is an empty original message until the adapter edits the outcome in.
  return fake.waitFor(
    () =>
      command.original?.content ||
      (command.callback?.type === 4 ? String(command.callback.data?.content) : undefined),
    `the answer to /${name}`,
  );
}

describe('schedules from Discord', () => {
  it('makes, runs, lists and manages a schedule; only its maker or an admin pauses or deletes it', {
    timeout: 120_000,
  }, async () => {
    const { alice, bob, mallory } = fake.users;
    const dm = fake.dmChannel(bob);
    expect(await run('schedule', fake.channels.general.id, bob, { when: 'every 5m', task: 'x' })).toMatch(
      /Use \/schedule inside a sandbot thread or a DM/,
    );
    expect(await run('schedule', dm.id, bob, { when: 'every 5m please', task: 'x' })).toMatch(
      /could not read “please” in when/,
    );
    const made = await run('schedule', dm.id, bob, { when: 'every 3s', task: 'say tick' });
    expect(made).toMatch(/^⏰ Scheduled `s-[a-z0-9]{10}` \(every 3s\): “say tick”\. Next run: <t:\d+:f>/);
    const id = /`(s-[a-z0-9]{10})`/.exec(made)?.[1] ?? '';

    const reply = await fake.waitFor(
      () => fake.botMessages(dm.id).find((m) => m.content.startsWith('did:')),
      'a scheduled run answered in the DM',
      60_000,
    );
    expect(reply.content).toContain('say tick');
    const marked = fake
      .botMessages(dm.id)
      .some((m) => m.history.some((t) => t.includes('⏰ scheduled task: say tick')));
    expect(marked).toBe(true);

    await expect.poll(() => run('schedules', dm.id, bob), { timeout: 10_000 }).toMatch(/: replied/);
    expect(await run('schedules', dm.id, bob)).toContain(`\`${id}\` every 3s · “say tick” · bob`);

    const mallorysDm = fake.dmChannel(mallory);
    expect(await run('schedules', mallorysDm.id, mallory, { action: 'pause', id })).toBe(
      `Only whoever made \`${id}\`, or an admin, can pause it.`,
    );
    expect(await run('schedules', fake.channels.general.id, alice, { action: 'pause', id })).toBe(
      `Paused \`${id}\`.`,
    );
    await sleep(3000);
    const count = () => fake.botMessages(dm.id).filter((m) => m.content.startsWith('did:')).length;
    const whilePaused = count();
    await sleep(7000);
    expect(count()).toBe(whilePaused);
    expect(await run('schedules', dm.id, bob, { action: 'delete', id })).toBe(
      `Deleted \`${id}\`: it will not run again.`,
    );
    expect(await run('schedules', dm.id, bob)).toMatch(/^No schedules here yet/);

    const conversation = ConversationId.parse(`discord:dm:${dm.id}`);
    expect((await auditOf(h.config, conversation, 'schedule.created'))[0]?.actor).toBe(
      `user:discord:${bob.id}`,
    );
    expect((await auditOf(h.config, conversation, 'schedule.paused'))[0]?.actor).toBe(
      `user:discord:${alice.id}`,
    );
    expect((await auditOf(h.config, conversation, 'schedule.deleted'))[0]?.actor).toBe(
      `user:discord:${bob.id}`,
    );
  });
  it('with new_thread, starts a thread of its own in the channel for each run', {
    timeout: 120_000,
  }, async () => {
    const { alice } = fake.users;
    const general = fake.channels.general.id;
    expect(
      await run('schedule', fake.dmChannel(alice).id, alice, {
        when: 'every 3s',
        task: 'x',
        new_thread: 'true',
      }),
    ).toMatch(/needs a server channel/);
    const made = await run('schedule', general, alice, {
      when: 'every 3s',
      task: 'say thread',
      new_thread: 'true',
    });
    expect(made).toMatch(
      /^⏰ Scheduled `s-[a-z0-9]{10}` \(every 3s\): “say thread”\. Each run starts a thread/,
    );
    const id = /`(s-[a-z0-9]{10})`/.exec(made)?.[1] ?? '';
    // Each run: a post in the channel saying what it is, a thread on it, the run's answer in the thread.
    const answered = (threadId: string) =>
      fake.botMessages(threadId).find((m) => m.content.startsWith('did:'));
    const roots = await fake.waitFor(
      () => {
        const done = fake
          .botMessages(general)
          .filter((m) => m.content.startsWith('⏰ scheduled task: say thread') && answered(m.id));
        return done.length >= 2 ? done : undefined;
      },
      'two runs answered, each in its own thread',
      90_000,
    );
    expect(answered(roots[0]?.id ?? '')?.content).toContain('say thread');
    expect(await run('schedules', general, alice, { action: 'delete', id })).toBe(
      `Deleted \`${id}\`: it will not run again.`,
    );
    const thread = fake.channel(roots[0]?.id ?? '');
    expect(thread?.parent_id).toBe(general);
    const conversation = ConversationId.parse(`discord:${thread?.guild_id}:${general}:${roots[0]?.id}`);
    const [ran] = await auditOf(h.config, conversation, 'schedule.run');
    expect(ran?.data).toMatchObject({ schedule: id, outcome: 'replied' });
  });
});
