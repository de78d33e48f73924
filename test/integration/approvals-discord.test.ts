import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { discordConversationId } from '../../adapters/discord/conversation.js';
import { type ApprovalDecision, approvalButtonId } from '../../src/contracts/approvals/approval.js';
import { APPROVAL_REFUSAL } from '../../src/contracts/policy/approvers.js';
import { ConversationOwners } from '../../src/shared/stores/conversation-owner.js';
import type { FakeInteraction, FakeMessage, FakeUser } from '../../testkit/fakes/fake-discord-state.js';
import { type PendingOptions, pendingRequest } from '../helpers/approvals-chat.js';
import { type DiscordHarness, startDiscordHarness } from '../helpers/discord-harness.js';

/**
 * Approval cards in Discord through the real discord.js client against the fake Discord, without a
 * worker: a request made in the store and its `approval` event delivered as the worker would, then
 * button clicks as Discord sends them (INTERACTION_CREATE type 3, answered with UPDATE_MESSAGE or an
 * ephemeral message). The worker's side (waiting, grants) is not here.
 */

const EPHEMERAL = 64;

async function start(settings: (h: { roles: { admin: string } }) => Record<string, string>) {
  return startDiscordHarness((fake) => ({ DISCORD_ADMIN_ROLE: fake.roles.admin, ...settings(fake) }));
}

/** A thread started by `owner` (bob by default, not an admin) and a pending request in it. */
async function request(h: DiscordHarness, options: PendingOptions & { owner?: FakeUser } = {}) {
  const { fake } = h;
  const owner = options.owner ?? fake.users.bob;
  const thread = fake.userThread(fake.channels.general.id, 'a task', owner);
  const conversation = discordConversationId(fake.guild.id, thread.id, fake.channels.general.id);
  await new ConversationOwners(h.deps.redis, h.config.SANDBOT_INSTANCE).claim(
    conversation,
    `discord:${owner.id}`,
  );
  const { approval, event } = await pendingRequest(
    h.deps.approvals,
    { conversation, platform: 'discord', route: { channelId: thread.id, guildId: fake.guild.id } },
    options,
  );
  return { approval, thread, event };
}

/** The bot's messages in the thread but for ephemeral answers (which only the clicker sees). */
function cards(h: DiscordHarness, channelId: string): FakeMessage[] {
  return h.fake.botMessages(channelId).filter((m) => (m.flags & EPHEMERAL) === 0);
}

function buttons(card: FakeMessage): { custom_id: string; style: number; label: string }[] {
  const rows = (card.components ?? []) as {
    components: { custom_id: string; style: number; label: string }[];
  }[];
  return rows.flatMap((row) => row.components);
}

function click(
  h: DiscordHarness,
  card: FakeMessage,
  user: FakeUser,
  decision: ApprovalDecision,
  id: string,
  roles?: string[],
) {
  return h.fake.click({
    message: card,
    customId: approvalButtonId(id, decision),
    user,
    ...(roles ? { roles } : {}),
  });
}

/** The ephemeral answer a click got. */
function noteOf(h: DiscordHarness, interaction: FakeInteraction): Promise<string> {
  return h.fake.waitFor(() => {
    const callback = interaction.callback;
    if (!callback) return undefined;
    expect(callback.type).toBe(4);
    expect(callback.data?.flags).toBe(EPHEMERAL);
    return callback.data?.content ?? '';
  }, 'an ephemeral answer');
}

describe('approval cards in Discord (SANDBOT_APPROVERS=admins)', () => {
  let h: DiscordHarness;
  beforeAll(async () => {
    h = await start(() => ({}));
  });
  afterAll(async () => {
    await h?.stop();
  });

  it('posts one card with three buttons; the agent’s words ping no one and link nowhere', async () => {
    const { approval, thread, event } = await request(h, {
      reason: 'tell @everyone and <@&123456789012345678>, see [docs](https://evil.example)',
    });
    await h.adapter.deliver(event());
    await h.adapter.deliver(event()); // a retried pending event
    const card = await h.fake.waitFor(() => cards(h, thread.id)[0], 'the card');
    expect(cards(h, thread.id)).toHaveLength(1);
    expect(buttons(card)).toEqual([
      {
        type: 2,
        style: 1,
        label: 'Approve for this conversation',
        custom_id: `sandbot_approval:approve:${approval.id}`,
      },
      {
        type: 2,
        style: 2,
        label: 'Approve for 1 hour',
        custom_id: `sandbot_approval:approve_hour:${approval.id}`,
      },
      { type: 2, style: 4, label: 'Deny', custom_id: `sandbot_approval:deny:${approval.id}` },
    ]);
    expect(card.allowedMentions).toEqual({ parse: [] });
    expect(card.content).toContain("The agent's reason (its own words, not checked)");
    expect(card.content).toContain('\\@everyone');
    expect(card.content).toContain('\\[docs\\]\\(https');
    expect(card.content).not.toContain('[docs](');
    expect(await h.deps.approvals.cardRef(approval.id, 'discord')).toEqual({
      channelId: thread.id,
      messageId: card.id,
    });
  });

  it('an admin’s click decides: the card is updated in the answer, showing who and when', async () => {
    const { approval, thread, event } = await request(h);
    await h.adapter.deliver(event());
    const card = await h.fake.waitFor(() => cards(h, thread.id)[0], 'the card');
    const clicked = click(h, card, h.fake.users.alice, 'approve', approval.id);
    await h.fake.waitFor(() => clicked.callback, 'the answer');
    expect(clicked.callback?.type).toBe(7);
    const stored = await h.deps.approvals.get(approval.id);
    expect(stored).toMatchObject({
      status: 'approved',
      scope: 'conversation',
      decidedBy: `user:discord:${h.fake.users.alice.id}`,
      decidedByName: 'alice',
    });
    expect(card.content).toMatch(
      /Approved for this conversation by alice at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC/,
    );
    expect(card.components).toEqual([]);
    // The worker's final event edits the same card: still one message.
    const edits = card.history.length;
    await h.adapter.deliver(event(stored));
    expect(card.history.length).toBe(edits + 1);
    expect(cards(h, thread.id)).toHaveLength(1);
  });

  it('refuses a non-approver (even the thread’s owner) with an ephemeral note', async () => {
    const { approval, thread, event } = await request(h, { kind: 'skill' });
    await h.adapter.deliver(event());
    const card = await h.fake.waitFor(() => cards(h, thread.id)[0], 'the card');
    for (const user of [h.fake.users.mallory, h.fake.users.bob]) {
      expect(await noteOf(h, click(h, card, user, 'approve', approval.id))).toBe(APPROVAL_REFUSAL);
    }
    expect((await h.deps.approvals.get(approval.id))?.status).toBe('pending');
    expect(buttons(card)).toHaveLength(3);
    expect(h.logs.some((l) => l.audit === 'access_refused' && l.user === h.fake.users.mallory.id)).toBe(true);
  });

  it('two concurrent clicks by two admins decide once; the other hears it was already decided', async () => {
    const { approval, thread, event } = await request(h);
    await h.adapter.deliver(event());
    const card = await h.fake.waitFor(() => cards(h, thread.id)[0], 'the card');
    const shown = structuredClone(card);
    const first = click(h, card, h.fake.users.alice, 'deny', approval.id);
    const second = click(h, card, h.fake.users.bob, 'approve_hour', approval.id, [h.fake.roles.admin]);
    await h.fake.waitFor(() => first.callback && second.callback, 'both answers');
    const types = [first.callback?.type, second.callback?.type].sort();
    expect(types).toEqual([4, 7]);
    const loser = first.callback?.type === 4 ? first : second;
    const stored = await h.deps.approvals.get(approval.id);
    expect(loser.callback?.data?.flags).toBe(EPHEMERAL);
    expect(loser.callback?.data?.content).toMatch(
      /already decided: (⛔ Denied by alice|✅ Approved for 1 hour by bob)/,
    );
    expect(stored?.status === 'denied' ? 'alice' : 'bob').toBe(stored?.decidedByName);
    // A late click on a stale copy of the card changes nothing.
    const late = click(h, shown, h.fake.users.alice, 'approve', approval.id);
    expect(await noteOf(h, late)).toMatch(/already decided/);
    expect((await h.deps.approvals.get(approval.id))?.status).toBe(stored?.status);
    expect(card.components).toEqual([]);
  });

  it('a click after the expiry gets “expired”, and the card says so', async () => {
    const { approval, thread, event } = await request(h, { timeoutSeconds: 1, now: Date.now() - 5000 });
    await h.adapter.deliver(event());
    const card = await h.fake.waitFor(() => cards(h, thread.id)[0], 'the card');
    const late = click(h, card, h.fake.users.alice, 'approve', approval.id);
    expect(await noteOf(h, late)).toMatch(/expired before your click: nothing was approved/);
    expect((await h.deps.approvals.get(approval.id))?.status).toBe('expired');
    await h.fake.waitFor(
      () => card.content.includes('Expired without a decision'),
      'the card shows the expiry',
    );
    expect(card.components).toEqual([]);
  });

  it('the worker’s expiry event edits the card; a final event with no card posts the outcome once', async () => {
    const first = await request(h);
    await h.adapter.deliver(first.event());
    const card = await h.fake.waitFor(() => cards(h, first.thread.id)[0], 'the card');
    const ended = await h.deps.approvals.expire(
      first.approval.id,
      'worker:test',
      'Expired without a decision: denied',
    );
    if (ended.outcome !== 'decided') throw new Error(`not expired: ${ended.outcome}`);
    await h.adapter.deliver(first.event(ended.approval));
    expect(card.content).toContain('⌛ Expired without a decision: denied');
    expect(card.components).toEqual([]);

    const second = await request(h);
    const decided = await h.deps.approvals.decide(second.approval.id, 'deny', {
      actor: 'admin:console:ana',
      name: 'ana',
    });
    if (decided.outcome !== 'decided') throw new Error('not decided');
    await h.adapter.deliver(second.event(decided.approval));
    await h.adapter.deliver(second.event());
    const posted = cards(h, second.thread.id);
    expect(posted).toHaveLength(1);
    expect(posted[0]?.content).toContain('⛔ Denied by ana');
    expect(posted[0]?.components ?? []).toEqual([]);
  });

  it('refuses a click on a card of another channel', async () => {
    const { approval } = await request(h);
    const forged = await request(h);
    await h.adapter.deliver(forged.event());
    const card = await h.fake.waitFor(() => cards(h, forged.thread.id)[0], 'the other card');
    // The first request's id, clicked in the second request's thread.
    const answer = click(h, card, h.fake.users.alice, 'approve', approval.id);
    expect(await noteOf(h, answer)).toMatch(/gone/);
    expect((await h.deps.approvals.get(approval.id))?.status).toBe('pending');
  });
  it('handled every click without an error', () => {
    const errors = h.logs.filter((l) => Number(l.level) >= 50);
    expect(errors).toEqual([]);
  });
});

describe('approval cards in Discord (SANDBOT_APPROVERS=owner)', () => {
  let h: DiscordHarness;
  beforeAll(async () => {
    h = await start(() => ({ SANDBOT_APPROVERS: 'owner' }));
  });
  afterAll(async () => {
    await h?.stop();
  });

  it('the thread’s owner may approve a skill, but not network access', async () => {
    const skill = await request(h, { kind: 'skill' });
    await h.adapter.deliver(skill.event());
    const skillCard = await h.fake.waitFor(() => cards(h, skill.thread.id)[0], 'the skill card');
    const stranger = click(h, skillCard, h.fake.users.mallory, 'approve', skill.approval.id);
    expect(await noteOf(h, stranger)).toBe(APPROVAL_REFUSAL);
    const owner = click(h, skillCard, h.fake.users.bob, 'approve_hour', skill.approval.id);
    await h.fake.waitFor(() => owner.callback, 'the owner’s answer');
    expect(owner.callback?.type).toBe(7);
    expect(await h.deps.approvals.get(skill.approval.id)).toMatchObject({
      status: 'approved',
      scope: 'hour',
    });
    expect(skillCard.content).toContain('Approved for 1 hour by bob');

    const network = await request(h, { kind: 'network' });
    await h.adapter.deliver(network.event());
    const networkCard = await h.fake.waitFor(() => cards(h, network.thread.id)[0], 'the network card');
    const refused = click(h, networkCard, h.fake.users.bob, 'approve', network.approval.id);
    expect(await noteOf(h, refused)).toBe(APPROVAL_REFUSAL);
    expect((await h.deps.approvals.get(network.approval.id))?.status).toBe('pending');
  });
});
