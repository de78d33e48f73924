import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { slackConversationId } from '../../adapters/slack/slack-event.js';
import { type ApprovalDecision, approvalButtonId } from '../../src/contracts/approvals/approval.js';
import { APPROVAL_REFUSAL } from '../../src/contracts/policy/approvers.js';
import { ApprovalStore } from '../../src/shared/stores/approval-store.js';
import { ConversationOwners } from '../../src/shared/stores/conversation-owner.js';
import { type FakeMessage, waitFor } from '../../testkit/fakes/fake-slack.js';
import { blockActions, type Transport } from '../../testkit/fakes/fake-slack-events.js';
import { type PendingOptions, pendingRequest } from '../helpers/approvals-chat.js';
import { withOutboundDelivery } from '../helpers/outbound.js';
import { type SlackHarness, startSlackHarness } from '../helpers/slack-harness.js';

/**
 * Approval cards in Slack through the real Bolt app against the fake Slack, without a worker: a request
 * made in the store and its `approval` event delivered as the worker would, then clicks sent as Slack
 * sends them (`block_actions`: a signed form `payload` over HTTP, an `interactive` envelope over Socket
 * Mode). The worker's side (waiting, grants) is not here.
 */

const CHANNEL = 'C0GENERAL';
const ADMIN = 'U0ALICE';
const OTHER_ADMIN = 'U0DAVE';
const OWNER = 'U0BOB';
const STRANGER = 'U0MALLORY';

interface Fixture {
  h: SlackHarness;
  store: ApprovalStore;
}

/** A thread started by `owner` and a pending request in it. */
async function request(f: Fixture, options: PendingOptions & { owner?: string } = {}) {
  const threadTs = f.h.fake.nextTs();
  f.h.fake.recordUserMessage({ channel: CHANNEL, ts: threadTs, text: 'do it', user: options.owner ?? OWNER });
  const conversation = slackConversationId(f.h.fake.team, CHANNEL, threadTs);
  await new ConversationOwners(f.h.redis, f.h.config.SANDBOT_INSTANCE).claim(
    conversation,
    `slack:${options.owner ?? OWNER}`,
  );
  const route = { team: f.h.fake.team, channel: CHANNEL, thread_ts: threadTs, ts: threadTs };
  const { approval, event } = await pendingRequest(
    f.store,
    { conversation, platform: 'slack', route },
    options,
  );
  return { approval, threadTs, event };
}

/** The card in the thread, once posted. */
async function cardIn(f: Fixture, threadTs: string): Promise<FakeMessage> {
  return waitFor('the approval card', () => f.h.fake.botMessages(CHANNEL, threadTs)[0]);
}

function buttonIds(card: FakeMessage): string[] {
  const actions = card.blocks?.find((b) => b.type === 'actions');
  return ((actions?.elements ?? []) as { action_id: string }[]).map((e) => e.action_id);
}

/** Clicks a button as `user`; resolves with the payload's response_url (where ephemeral notes go). */
async function click(f: Fixture, card: FakeMessage, user: string, decision: ApprovalDecision, id: string) {
  const payload = blockActions(f.h.fake, { user, message: card, actionId: approvalButtonId(id, decision) });
  expect(await f.h.sender.interaction(payload)).toBe(200);
  return String(payload.response_url);
}

function noteAt(f: Fixture, url: string): Promise<string> {
  return waitFor(`an ephemeral note at ${url}`, () => {
    const found = f.h.fake.responses.find((r) => r.url === url);
    if (!found) return undefined;
    expect(found.response_type).toBe('ephemeral');
    expect(found.replace_original).toBe(false);
    return String(found.text);
  });
}

async function start(label: string, transport: Transport, settings: Record<string, string>) {
  const h = await startSlackHarness(label, transport, {
    SLACK_ADMIN_USERS: `${ADMIN},${OTHER_ADMIN}`,
    ...settings,
  });
  return { h, store: new ApprovalStore(h.redis, h.config.SANDBOT_INSTANCE) };
}

describe('approval cards in Slack (HTTP interactivity, SANDBOT_APPROVERS=admins)', () => {
  let f: Fixture;
  beforeAll(async () => {
    f = await start('apr-slack-http', 'http', {});
  });
  afterAll(async () => {
    await f?.h.stop();
  });

  it('posts one card in the thread, with three buttons and the agent’s words escaped', async () => {
    const { approval, threadTs, event } = await request(f, {
      reason: 'tell <!channel> and @everyone, see <https://evil.example|docs> & more',
    });
    await f.h.adapter.deliver(event());
    await f.h.adapter.deliver(event()); // a retried pending event
    const card = await cardIn(f, threadTs);
    expect(f.h.fake.botMessages(CHANNEL, threadTs)).toHaveLength(1);
    expect(buttonIds(card)).toEqual([
      `sandbot_approval:approve:${approval.id}`,
      `sandbot_approval:approve_hour:${approval.id}`,
      `sandbot_approval:deny:${approval.id}`,
    ]);
    const sections = (card.blocks ?? []).filter((b) => b.type === 'section');
    const texts = sections.map((b) => b.text as { type: string; text: string });
    expect(texts.every((t) => t.type === 'plain_text')).toBe(true);
    expect(texts[0]?.text).toContain('network access to pypi.org');
    expect(texts[1]?.text).toMatch(/^The agent's reason \(its own words, not checked\): “tell <!channel>/);
    expect(texts[1]?.text).toContain('@\u200beveryone');
    // The notification text is mrkdwn: nothing in it is Slack markup any more.
    expect(card.text).not.toMatch(/<!channel>|<https:/);
    expect(card.text).toContain('&lt;!channel&gt;');
    expect(card.text).toContain('&amp; more');
    expect(await f.store.cardRef(approval.id, 'slack')).toEqual({ channel: CHANNEL, ts: card.ts });
  });

  it('an admin’s click decides: the card shows who and when, the store says approved for an hour', async () => {
    const { approval, threadTs, event } = await request(f);
    await f.h.adapter.deliver(event());
    const card = await cardIn(f, threadTs);
    await click(f, card, ADMIN, 'approve_hour', approval.id);
    await waitFor('the card edited', () => card.edits.length > 0);
    const stored = await f.store.get(approval.id);
    expect(stored).toMatchObject({ status: 'approved', scope: 'hour', decidedBy: `user:slack:${ADMIN}` });
    expect(stored?.decidedByName).toBe('alice');
    expect(card.text).toMatch(/Approved for 1 hour by alice at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC/);
    expect(buttonIds(card)).toEqual([]);
    // The worker's final event edits the same card again: still one message.
    await f.h.adapter.deliver(event(stored));
    expect(card.edits).toHaveLength(2);
    expect(f.h.fake.botMessages(CHANNEL, threadTs)).toHaveLength(1);
  });

  it('refuses a non-approver with an ephemeral note and decides nothing', async () => {
    const { approval, threadTs, event } = await request(f, { kind: 'skill' });
    await f.h.adapter.deliver(event());
    const card = await cardIn(f, threadTs);
    // Under `admins` even the thread's owner may not decide.
    for (const user of [STRANGER, OWNER]) {
      const url = await click(f, card, user, 'approve', approval.id);
      expect(await noteAt(f, url)).toBe(APPROVAL_REFUSAL);
    }
    expect((await f.store.get(approval.id))?.status).toBe('pending');
    expect(card.edits).toEqual([]);
    expect(f.h.logs.some((l) => l.audit === 'access_refused' && l.user === STRANGER)).toBe(true);
  });

  it('two concurrent clicks decide once; the second hears it was already decided', async () => {
    const { approval, threadTs, event } = await request(f);
    await f.h.adapter.deliver(event());
    const card = await cardIn(f, threadTs);
    // What a slow client still shows after the decision: the card with its buttons.
    const shown = structuredClone(card);
    const both = await Promise.all([
      click(f, card, ADMIN, 'deny', approval.id),
      click(f, card, OTHER_ADMIN, 'approve', approval.id),
    ]);
    const stored = await waitFor('a decision', async () => {
      const a = await f.store.get(approval.id);
      return a?.status !== 'pending' && a;
    });
    const notes = await waitFor('one note', () => {
      const found = f.h.fake.responses.filter((r) => both.includes(String(r.url)));
      return found.length > 0 && found;
    });
    expect(notes).toHaveLength(1);
    const expected =
      stored.status === 'denied' ? /already decided: ⛔ Denied by alice/ : /already decided: ✅ .* by dave/;
    expect(String(notes[0]?.text)).toMatch(expected);
    // A third click, later, on the stale card, changes nothing either.
    const late = await click(f, shown, ADMIN, stored.status === 'denied' ? 'approve' : 'deny', approval.id);
    expect(await noteAt(f, late)).toMatch(/already decided/);
    expect((await f.store.get(approval.id))?.status).toBe(stored.status);
    expect(card.blocks?.some((b) => b.type === 'actions')).toBe(false);
  });

  it('a click after the expiry gets “expired”, and the card says so', async () => {
    const { approval, threadTs, event } = await request(f, { timeoutSeconds: 1, now: Date.now() - 5000 });
    await f.h.adapter.deliver(event());
    const card = await cardIn(f, threadTs);
    const url = await click(f, card, ADMIN, 'approve', approval.id);
    expect(await noteAt(f, url)).toMatch(/expired before your click: nothing was approved/);
    expect((await f.store.get(approval.id))?.status).toBe('expired');
    await waitFor('the card shows the expiry', () => card.text.includes('Expired without a decision'));
    expect(buttonIds(card)).toEqual([]);
  });

  it('the worker’s expiry event edits the card in place', async () => {
    const { approval, threadTs, event } = await request(f);
    await f.h.adapter.deliver(event());
    const card = await cardIn(f, threadTs);
    const ended = await f.store.expire(approval.id, 'worker:test', 'Expired without a decision: denied');
    expect(ended.outcome).toBe('decided');
    if (ended.outcome !== 'decided') return;
    await f.h.adapter.deliver(event(ended.approval));
    expect(card.text).toContain('⌛ Expired without a decision: denied');
    expect(buttonIds(card)).toEqual([]);
    expect(f.h.fake.botMessages(CHANNEL, threadTs)).toHaveLength(1);
  });

  it('a final event with no card yet posts the outcome once; the late pending event posts nothing', async () => {
    const { approval, threadTs, event } = await request(f);
    const decided = await f.store.decide(approval.id, 'deny', { actor: 'admin:console:ana', name: 'ana' });
    if (decided.outcome !== 'decided') throw new Error('not decided');
    await f.h.adapter.deliver(event(decided.approval));
    await f.h.adapter.deliver(event());
    const messages = f.h.fake.botMessages(CHANNEL, threadTs);
    expect(messages).toHaveLength(1);
    expect(messages[0]?.text).toContain('⛔ Denied by ana');
    expect(buttonIds(messages[0] as FakeMessage)).toEqual([]);
  });

  it('goes through the outbound queue as the worker publishes it', async () => {
    const { approval, threadTs, event } = await request(f);
    await withOutboundDelivery(f.h.config, f.h.adapter, async (publish) => {
      await publish(event());
      const card = await cardIn(f, threadTs);
      await click(f, card, ADMIN, 'deny', approval.id);
      await waitFor('the card edited by the click', () => card.edits.length === 1);
      const decided = await f.store.get(approval.id);
      expect(decided?.status).toBe('denied');
      await publish(event(decided));
      await waitFor('the card edited by the final event', () => card.edits.length === 2);
      expect(card.text).toContain('⛔ Denied by alice');
      expect(f.h.fake.botMessages(CHANNEL, threadTs)).toHaveLength(1);
    });
  });

  it('refuses a click naming a request of another channel', async () => {
    const { approval } = await request(f);
    const elsewhere = f.h.fake.nextTs();
    f.h.fake.messages.push({
      channel: 'C0OTHER',
      ts: elsewhere,
      text: 'a forged card',
      user: f.h.fake.botUserId,
      edits: [],
      files: [],
      blocks: [
        {
          type: 'actions',
          block_id: 'x',
          elements: [approval.id, 'apr_doesnotexist0'].map((id) => ({
            type: 'button',
            action_id: approvalButtonId(id, 'approve'),
            value: 'approve',
          })),
        },
      ],
    });
    const forged = f.h.fake.messages.at(-1) as FakeMessage;
    const url = await click(f, forged, ADMIN, 'approve', approval.id);
    expect(await noteAt(f, url)).toMatch(/gone/);
    expect((await f.store.get(approval.id))?.status).toBe('pending');
    const unknown = await click(f, forged, ADMIN, 'approve', 'apr_doesnotexist0');
    expect(await noteAt(f, unknown)).toMatch(/gone/);
  });
});

describe('approval cards in Slack (Socket Mode, SANDBOT_APPROVERS=owner)', () => {
  let f: Fixture;
  beforeAll(async () => {
    f = await start('apr-slack-socket', 'socket', { SANDBOT_APPROVERS: 'owner' });
  });
  afterAll(async () => {
    await f?.h.stop();
  });

  it('the thread’s owner may approve a skill, but not network access', async () => {
    const skill = await request(f, { kind: 'skill' });
    await f.h.adapter.deliver(skill.event());
    const skillCard = await cardIn(f, skill.threadTs);
    const stranger = await click(f, skillCard, STRANGER, 'approve', skill.approval.id);
    expect(await noteAt(f, stranger)).toBe(APPROVAL_REFUSAL);
    await click(f, skillCard, OWNER, 'approve', skill.approval.id);
    await waitFor('the skill card edited', () => skillCard.edits.length > 0);
    expect(await f.store.get(skill.approval.id)).toMatchObject({
      status: 'approved',
      scope: 'conversation',
      decidedBy: `user:slack:${OWNER}`,
    });
    expect(skillCard.text).toContain('Approved for this conversation by bob');

    const network = await request(f, { kind: 'network' });
    await f.h.adapter.deliver(network.event());
    const networkCard = await cardIn(f, network.threadTs);
    const refused = await click(f, networkCard, OWNER, 'approve', network.approval.id);
    expect(await noteAt(f, refused)).toBe(APPROVAL_REFUSAL);
    expect((await f.store.get(network.approval.id))?.status).toBe('pending');
    await click(f, networkCard, ADMIN, 'deny', network.approval.id);
    await waitFor('the network card edited', () => networkCard.text.includes('⛔ Denied by alice'));
  });
});
