import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../../testkit/fakes/fake-slack.js';
import { personMessage, slashCommand, type Transport } from '../../testkit/fakes/fake-slack-events.js';
import { type SlackHarness, startSlackHarness } from '../helpers/slack-harness.js';

/**
 * `/sandbot` through the real Bolt app over both transports: answers go to the caller only (through
 * the command's response_url); `reset` goes through the queue in order with the conversation's messages.
 * A running turn being stopped is covered end to end in slack-e2e.test.ts.
 */

const CHANNEL = 'C0GENERAL';
const DM = 'D0ALICE';
const BOB_DM = 'D0BOB';
const CAROL_DM = 'D0CAROL';

describe.each<Transport>(['socket', 'http'])('/sandbot over %s', (transport) => {
  let h: SlackHarness;
  beforeAll(async () => {
    h = await startSlackHarness(`slack-cmd-${transport}`, transport, {
      SLACK_ALLOWED_USERS: 'U0ALICE,U0BOB,U0CAROL',
      SLACK_ADMIN_USERS: 'U0ALICE',
    });
  });
  afterAll(async () => {
    await h?.stop();
  });

  /** Runs a command; resolves with the ephemeral answer the caller got. */
  const run = async (channel: string, user: string, text: string) => {
    const fields = slashCommand(h.fake, { channel, user, text });
    expect(await h.sender.command(fields)).toBe(200);
    const answer = await waitFor(`the answer to "/sandbot ${text}"`, () =>
      h.fake.responses.find((r) => r.url === fields.response_url),
    );
    expect(answer.response_type).toBe('ephemeral');
    return String(answer.text);
  };

  it('explains itself', async () => {
    expect(await run(DM, 'U0ALICE', '')).toContain('/sandbot stop');
    expect(await run(DM, 'U0ALICE', 'dance')).toMatch(/don't know `dance`/);
  });

  it('reports the status of the caller’s latest thread in a channel', async () => {
    expect(await run(CHANNEL, 'U0BOB', 'status')).toMatch(/no conversation with me in this channel yet/);
    const m = personMessage(h.fake, {
      channel: CHANNEL,
      user: 'U0BOB',
      text: `<@${h.fake.botUserId}> do it`,
    });
    await h.sender.event(m.mention);
    await waitFor('the mention queued', async () => (await h.queued()).some((q) => q.id.endsWith(m.ts)));
    // No worker runs here: the message waits.
    expect(await run(CHANNEL, 'U0BOB', 'status')).toMatch(
      /^Idle, 1 message waiting\. No turn has finished yet\.$/,
    );
    expect(await run(CHANNEL, 'U0BOB', 'stop')).toBe('Nothing is running there right now.');
  });

  it('queues a reset for the DM, or for the thread a link names', async () => {
    expect(await run(DM, 'U0ALICE', 'reset')).toMatch(/^Reset queued/);
    const threadTs = h.fake.nextTs();
    const link = `<https://fake.slack.com/archives/${CHANNEL}/p${threadTs.replace('.', '')}>`;
    expect(await run(DM, 'U0ALICE', `reset ${link}`)).toMatch(/^Reset queued/);
    const resets = await waitFor('two resets queued', async () => {
      const found = (await h.queued()).filter((q) => q.command === 'reset');
      return found.length >= 2 ? found : undefined;
    });
    expect(resets.map((r) => [r.conversation, r.route.thread_ts])).toEqual([
      [`slack:${h.fake.team}:${DM}:dm`, undefined],
      [`slack:${h.fake.team}:${CHANNEL}:${threadTs}`, threadTs],
    ]);
    expect(resets[0]).toMatchObject({ platform: 'slack', user: { id: 'U0ALICE' }, text: '' });
  });

  it('keeps kill, release and network for admins, and refuses people outside the allowlist', async () => {
    expect(await run(DM, 'U0BOB', 'kill')).toBe('`/sandbot kill` is for sandbot admins only.');
    expect(await run(DM, 'U0ALICE', 'network')).toBe(
      'This conversation now has no network; it applies from its next turn.',
    );
    expect(await run(DM, 'U0ALICE', 'network allow pypi.org,*.github.com')).toBe(
      'This conversation now has network to pypi.org, *.github.com (through the egress proxy); it applies from its next turn.',
    );
    expect(await run(DM, 'U0ALICE', 'network allow http://x')).toMatch(/"http:\/\/x" is not/);
    expect(await run(DM, 'U0ALICE', 'network off')).toMatch(/now has no network/);
    expect(await run(DM, 'U0ALICE', 'kill looks hijacked')).toBe(
      'Killed. The conversation is quarantined until `/sandbot release`.',
    );
    expect(await run(DM, 'U0ALICE', 'release')).toBe('Released: the conversation runs again.');
    expect(await run(DM, 'U0ALICE', 'release')).toBe('That conversation was not quarantined.');
    expect(await run(DM, 'U0MALLORY', 'status')).toMatch(/allowlist/);
    const audits = h.logs.filter((l) => l.audit === 'access_refused');
    expect(audits.map((a) => [a.user, a.reason, a.command])).toEqual([
      ['U0BOB', 'admin', 'kill'],
      ['U0MALLORY', 'user', 'status'],
    ]);
  });

  it('acts on a conversation only for the person who started it, or an admin', async () => {
    // Bob starts a thread in the channel and one in his DM.
    const inChannel = personMessage(h.fake, {
      channel: CHANNEL,
      user: 'U0BOB',
      text: `<@${h.fake.botUserId}> my thread`,
    });
    const dmRoot = h.fake.nextTs();
    const inDm = personMessage(h.fake, {
      channel: BOB_DM,
      user: 'U0BOB',
      text: 'private',
      thread_ts: dmRoot,
    });
    await h.sender.event(inChannel.mention);
    await h.sender.event(inDm.message);
    const threadConversation = `slack:${h.fake.team}:${CHANNEL}:${inChannel.ts}`;
    const dmConversation = `slack:${h.fake.team}:${BOB_DM}:${dmRoot}`;
    await waitFor('both of bob’s messages queued', async () => {
      const queued = (await h.queued()).map((q): string => q.conversation);
      return queued.includes(threadConversation) && queued.includes(dmConversation);
    });
    const p = (ts: string) => `p${ts.replace('.', '')}`;
    const threadLink = `<https://fake.slack.com/archives/${CHANNEL}/${p(inChannel.ts)}>`;
    const dmLink = `<https://fake.slack.com/archives/${BOB_DM}/${p(inDm.ts)}?thread_ts=${dmRoot}&cid=${BOB_DM}>`;

    // Carol may not reset, stop or look at them; of the DM she learns nothing.
    expect(await run(CHANNEL, 'U0CAROL', `reset ${threadLink}`)).toBe(
      'Only <@U0BOB> (who started it) or an admin can use `/sandbot reset` on it.',
    );
    expect(await run(CHANNEL, 'U0CAROL', `stop ${threadLink}`)).toMatch(/^Only <@U0BOB> \(who started it\)/);
    expect(await run(CAROL_DM, 'U0CAROL', `status ${dmLink}`)).toBe(
      'Only the person who started that conversation, or an admin, can use `/sandbot status` on it.',
    );
    expect(await run(CHANNEL, 'U0CAROL', `reset ${dmLink}`)).toMatch(/^Only the person who started/);

    // Bob may, from anywhere; so may an admin.
    expect(await run(CHANNEL, 'U0BOB', `status ${dmLink}`)).toMatch(/^Idle, 1 message waiting\./);
    expect(await run(DM, 'U0ALICE', `status ${dmLink}`)).toMatch(/^Idle, 1 message waiting\./);
    expect(await run(DM, 'U0ALICE', `reset ${threadLink}`)).toMatch(/^Reset queued/);
    const resets = await waitFor('the admin’s reset queued', async () => {
      const found = (await h.queued()).filter(
        (q) => q.command === 'reset' && [threadConversation, dmConversation].includes(q.conversation),
      );
      return found.length > 0 ? found : undefined;
    });
    // Only the admin's reset reached the queue.
    expect(resets.map((r) => [r.user.id, r.conversation])).toEqual([['U0ALICE', threadConversation]]);
    const refused = h.logs.filter((l) => l.audit === 'access_refused' && l.reason === 'owner');
    expect(refused.map((l) => [l.user, l.command, l.conversation])).toEqual([
      ['U0CAROL', 'reset', threadConversation],
      ['U0CAROL', 'stop', threadConversation],
      ['U0CAROL', 'status', dmConversation],
      ['U0CAROL', 'reset', dmConversation],
    ]);
  });
});
