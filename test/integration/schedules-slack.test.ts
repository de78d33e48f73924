import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConversationId } from '../../src/contracts/conversation/id.js';
import { waitFor } from '../../testkit/fakes/fake-slack.js';
import { slashCommand } from '../../testkit/fakes/fake-slack-events.js';
import { auditOf, sleep } from '../helpers/schedules.js';
import { type SlackStack, startSlackStack } from '../helpers/slack-stack.js';

/**
 * `/sandbot schedule` and `/sandbot schedules` through the real Bolt app (Socket Mode) against the fake
 * Slack, with the real gateway, worker and engine: a schedule made in a DM runs there, marked as
 * scheduled; only its maker (or an admin) pauses or deletes it; everything is in the audit log.
 */

const ALICE_DM = 'D0ALICE';
const BOB_DM = 'D0BOB';
let s: SlackStack;

beforeAll(async () => {
  s = await startSlackStack(
    'sched-slack',
    (request) => ({ reply: `did: ${request.messages.at(-1)?.content ?? ''}` }),
    () => ({ SANDBOT_SCHEDULE_MIN_SECONDS: '2', SLACK_ADMIN_USERS: 'U0ADMIN' }),
  );
}, 120_000);

afterAll(async () => {
  await s?.stop();
});

async function run(channel: string, user: string, text: string): Promise<string> {
  const fields = slashCommand(s.fake, { channel, user, text });
  await s.sender.command(fields);
  const answer = await waitFor(`the answer to /sandbot ${text}`, () =>
    s.fake.responses.find((r) => r.url === fields.response_url),
  );
  expect(answer.response_type).toBe('ephemeral');
  return String(answer.text);
}

const botTexts = () => s.fake.botMessages(ALICE_DM).map((m) => [m.text, ...m.edits].join('\n'));
const replies = () => s.fake.botMessages(ALICE_DM).filter((m) => m.text.startsWith('did:'));

describe('schedules from Slack', () => {
  it('refuses a time it cannot read or an interval under the minimum, in words', async () => {
    expect(await run(ALICE_DM, 'U0ALICE', 'schedule whenever do it')).toMatch(
      /could not read when to run it/,
    );
    expect(await run(ALICE_DM, 'U0ALICE', 'schedule every 1s tick')).toMatch(
      /^Not scheduled: every: 1s is shorter than the minimum of 2s/,
    );
    expect(await run(ALICE_DM, 'U0ALICE', 'schedule every 5m')).toMatch(/What should it do\?/);
  });

  it('runs a schedule in the conversation it was made in; its maker pauses and deletes it', {
    timeout: 120_000,
  }, async () => {
    const made = await run(ALICE_DM, 'U0ALICE', 'schedule every 3s say tick');
    expect(made).toMatch(/^⏰ Scheduled `s-[a-z0-9]{10}` \(every 3s\): “say tick”\. Next run: <!date\^\d+\^/);
    const id = /`(s-[a-z0-9]{10})`/.exec(made)?.[1] ?? '';
    await waitFor('a scheduled run answered in the DM', () => replies()[0], 60_000);
    expect(botTexts().some((t) => t.startsWith('⏰ scheduled task: say tick'))).toBe(true);
    expect(replies()[0]?.text).toContain('say tick');

    // The run's outcome is recorded just after its reply goes out.
    await expect.poll(() => run(ALICE_DM, 'U0ALICE', 'schedules'), { timeout: 10_000 }).toMatch(/: replied/);
    const listed = await run(ALICE_DM, 'U0ALICE', 'schedules');
    expect(listed).toContain(`\`${id}\` every 3s · “say tick” · alice · next <!date^`);
    expect(listed).toMatch(/last <!date\^\d+\^.*: replied/);

    expect(await run(BOB_DM, 'U0BOB', `schedules pause ${id}`)).toBe(
      `Only whoever made \`${id}\`, or an admin, can pause it.`,
    );
    expect(await run(ALICE_DM, 'U0ALICE', `schedules pause ${id}`)).toBe(`Paused \`${id}\`.`);
    await sleep(3000);
    const whilePaused = replies().length;
    await sleep(7000);
    expect(replies()).toHaveLength(whilePaused);
    expect(await run(ALICE_DM, 'U0ALICE', 'schedules')).toMatch(/paused \(paused by user:slack:U0ALICE\)/);

    expect(await run(BOB_DM, 'U0BOB', `schedules delete ${id}`)).toMatch(/^Only whoever made/);
    expect(await run(ALICE_DM, 'U0ADMIN', `schedules delete ${id}`)).toBe(
      `Deleted \`${id}\`: it will not run again.`,
    );
    expect(await run(ALICE_DM, 'U0ALICE', 'schedules')).toMatch(/^No schedules here yet/);

    const conversation = ConversationId.parse(`slack:${s.fake.team}:${ALICE_DM}:dm`);
    const [created] = await auditOf(s.config, conversation, 'schedule.created');
    expect(created).toMatchObject({ actor: 'user:slack:U0ALICE', data: { schedule: id, when: 'every 3s' } });
    const [ran] = await auditOf(s.config, conversation, 'schedule.run');
    expect(ran).toMatchObject({ actor: expect.stringMatching(/^worker:/), turnId: expect.any(String) });
    expect(ran?.data).toMatchObject({ schedule: id, outcome: 'replied' });
    expect((await auditOf(s.config, conversation, 'schedule.paused'))[0]?.actor).toBe('user:slack:U0ALICE');
    expect((await auditOf(s.config, conversation, 'schedule.deleted'))[0]?.actor).toBe('user:slack:U0ADMIN');
  });

  it('with --new-thread, starts a thread of its own in the channel for each run', {
    timeout: 120_000,
  }, async () => {
    const CHANNEL = 'C0SCHEDULES';
    expect(await run(ALICE_DM, 'U0ALICE', 'schedule --new-thread every 3s say hi')).toMatch(
      /needs a channel/,
    );
    const made = await run(CHANNEL, 'U0ALICE', 'schedule --new-thread every 3s say thread');
    expect(made).toMatch(
      /^⏰ Scheduled `s-[a-z0-9]{10}` \(every 3s\): “say thread”\. Each run starts a thread/,
    );
    const id = /`(s-[a-z0-9]{10})`/.exec(made)?.[1] ?? '';
    // Each run: a top-level post in the channel saying what it is, and the run's answer in its thread.
    const roots = () =>
      s.fake.botMessages(CHANNEL).filter((m) => m.text.startsWith('⏰ scheduled task: say thread'));
    const answered = (ts: string) => s.fake.botMessages(CHANNEL, ts).find((m) => m.text.startsWith('did:'));
    const [first, second] = await waitFor(
      'two runs answered, each in its own thread',
      () => {
        const done = roots().filter((m) => answered(m.ts));
        return done.length >= 2 ? done : undefined;
      },
      90_000,
    );
    expect(first?.ts).not.toBe(second?.ts);
    expect(answered(first?.ts ?? '')?.text).toContain('say thread');
    expect(await run(CHANNEL, 'U0ALICE', `schedules delete ${id}`)).toBe(
      `Deleted \`${id}\`: it will not run again.`,
    );
    // Each thread is a conversation of its own, with its run recorded there.
    const conversation = ConversationId.parse(`slack:${s.fake.team}:${CHANNEL}:${first?.ts}`);
    const [ran] = await auditOf(s.config, conversation, 'schedule.run');
    expect(ran?.data).toMatchObject({ schedule: id, outcome: 'replied' });
  });

  it('reads plain words for a one-off', async () => {
    const made = await run(BOB_DM, 'U0BOB', 'schedule in 2 hours check whether the deploy finished');
    expect(made).toMatch(
      /^⏰ Scheduled `s-[a-z0-9]{10}` \(at [0-9T:.-]+Z\): “check whether the deploy finished”/,
    );
    const at = Date.parse(/\(at (\S+)\)/.exec(made)?.[1] ?? '');
    expect(Math.abs(at - (Date.now() + 2 * 3_600_000))).toBeLessThan(60_000);
  });
});
