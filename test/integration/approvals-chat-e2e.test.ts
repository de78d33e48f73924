import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDocker } from '../../sandbox/host/driver/docker-client.js';
import { approvalButtonId } from '../../src/contracts/approvals/approval.js';
import { APPROVAL_REFUSAL } from '../../src/contracts/policy/approvers.js';
import { ApprovalStore } from '../../src/shared/stores/approval-store.js';
import { waitFor } from '../../testkit/fakes/fake-slack.js';
import { REDIS_URL } from '../../testkit/redis.js';
import {
  accessResults,
  chatApprovalScript,
  decisionsOf,
  discordApprovalChat,
  discordButtons,
  EPHEMERAL,
  grantsOf,
  slackApprovalChat,
  slackButtonIds,
} from '../helpers/approvals-chat.js';
import { type DiscordStack, startDiscordStack } from '../helpers/discord-stack.js';
import { greeterSkill } from '../helpers/skill-fixtures.js';
import { registryOf, removeSkillVolumes, skillsDir, vetSkill } from '../helpers/skill-stack.js';
import { type SlackStack, startSlackStack } from '../helpers/slack-stack.js';

/**
 * Approvals end to end in Slack and Discord on real parts: the real Bolt and discord.js clients against
 * the fakes, the gateway, Redis, the worker and real sandboxes; only the model is scripted. The model's
 * `request_access` call in a thread a non-admin started becomes a card there; clicks come as the
 * platforms send them (Slack `block_actions`, Discord INTERACTION_CREATE type 3): the thread's owner is
 * refused (SANDBOT_APPROVERS=admins), an admin's double click decides once, the worker applies the grant
 * and tells the model who decided; an undecided request expires as denied. Under SANDBOT_APPROVERS=owner
 * the thread's owner approves a skill but not network access. Without a worker:
 * approvals-slack/-discord.test.ts; the web chat: approvals-web.test.ts.
 */

const HOST = 'pkgs.example.test:8080';
const REASON = 'fetch the package index';
const TIMEOUT = { timeout: 120_000 };
const redis = new Redis(REDIS_URL);
afterAll(() => redis.disconnect());

/** Waits for the first request_access result the model read that contains `text`. */
const resultWith = (ollama: SlackStack['ollama'], text: string) =>
  waitFor(
    `the model to read ${JSON.stringify(text)}`,
    () => accessResults(ollama).find((r) => r.includes(text)),
    60_000,
  );

const CHANNEL = 'C0APPROVE';
const ADMIN = 'U0ALICE';
const OWNER = 'U0BOB';

describe('approvals in Slack with a real worker (Socket Mode, SANDBOT_APPROVERS=admins)', () => {
  let s: SlackStack;
  let chat: ReturnType<typeof slackApprovalChat>;
  let store: ApprovalStore;
  beforeAll(async () => {
    s = await startSlackStack('apr-e2e-slack', chatApprovalScript, () => ({
      SLACK_ADMIN_USERS: ADMIN,
      SANDBOT_APPROVAL_TIMEOUT_SECONDS: '10',
    }));
    chat = slackApprovalChat(s, CHANNEL);
    store = new ApprovalStore(redis, s.config.SANDBOT_INSTANCE);
  });
  afterAll(async () => {
    await s?.stop();
  });

  it(
    'refuses the owner, decides an admin’s double click once, and the worker grants and tells the model',
    TIMEOUT,
    async () => {
      const { askInThread, click, noteAt, notesAt } = chat;
      const { ts, card, id, conversation } = await askInThread(OWNER, {
        kind: 'network',
        host: HOST,
        reason: REASON,
      });
      expect(card.thread_ts).toBe(ts);
      expect(slackButtonIds(card)).toEqual(
        (['approve', 'approve_hour', 'deny'] as const).map((d) => approvalButtonId(id, d)),
      );
      expect(card.text).toContain(`network access to ${HOST}`);
      expect(card.text).toContain(`The agent's reason (its own words, not checked): “${REASON}”`);

      // Under `admins` the thread's owner may not decide, even on their own thread.
      expect(await noteAt(await click(card, OWNER, 'approve', id))).toEqual({
        type: 'ephemeral',
        replace: false,
        text: APPROVAL_REFUSAL,
      });
      expect((await store.get(id))?.status).toBe('pending');
      expect(card.edits).toEqual([]);

      // A double click: the same admin's two clicks at once, as a slow client sends them.
      const shown = structuredClone(card);
      const urls = await Promise.all([click(card, ADMIN, 'approve', id), click(shown, ADMIN, 'approve', id)]);
      const [late] = await waitFor(
        'the second click’s note',
        () => notesAt(urls).length > 0 && notesAt(urls),
      );
      expect(late?.response_type).toBe('ephemeral');
      expect(String(late?.text)).toMatch(/already decided: ✅ Approved for this conversation by alice at /);

      expect(await resultWith(s.ollama, 'request_access (network')).toContain(
        `approved by alice (user:slack:${ADMIN}) for this conversation: ${HOST} is granted`,
      );
      await waitFor(
        'the reply',
        () => s.fake.botMessages(CHANNEL, ts).find((p) => p.text.includes('model saw')),
        60_000,
      );
      expect(notesAt(urls)).toHaveLength(1);
      expect(await store.get(id)).toMatchObject({
        status: 'approved',
        scope: 'conversation',
        decidedBy: `user:slack:${ADMIN}`,
      });
      expect(card.text).toMatch(
        /✅ Approved for this conversation by alice at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC/,
      );
      expect(slackButtonIds(card)).toEqual([]);
      expect(
        s.fake.botMessages(CHANNEL, ts).filter((p) => p.text.includes('network access to')),
      ).toHaveLength(1);
      expect(await grantsOf(redis, s.config, conversation)).toEqual([HOST]);
      const decisions = await waitFor('the decision audited', async () => {
        const found = await decisionsOf(s.config, conversation);
        return found.length > 0 && found;
      });
      expect(decisions.map((e) => e.actor)).toEqual([`user:slack:${ADMIN}`]);
    },
  );

  it(
    'expires an undecided request as denied: the model hears it, the card says so, a late click is told',
    TIMEOUT,
    async () => {
      const { card, id, conversation } = await chat.askInThread(OWNER, {
        kind: 'network',
        host: 'slow.example.test',
        reason: 'nobody answers',
      });
      const shown = structuredClone(card);
      expect(await resultWith(s.ollama, 'request_access (network slow.example.test)')).toContain(
        'expired without a decision: denied',
      );
      await waitFor('the card edited to expired', () =>
        card.text.includes('⌛ Expired without a decision: denied'),
      );
      expect(slackButtonIds(card)).toEqual([]);
      const note = await chat.noteAt(await chat.click(shown, ADMIN, 'approve', id));
      expect(note.type).toBe('ephemeral');
      expect(note.text).toMatch(/expired before your click/);
      expect((await store.get(id))?.status).toBe('expired');
      expect(await grantsOf(redis, s.config, conversation)).toEqual([]);
    },
  );
});

describe('approvals in Slack with a real worker (SANDBOT_APPROVERS=owner)', () => {
  const docker = createDocker(undefined);
  let s: SlackStack;
  let chat: ReturnType<typeof slackApprovalChat>;
  beforeAll(async () => {
    // An admin-vetted skill the agent may ask for.
    const dir = await skillsDir();
    await vetSkill(registryOf({ SANDBOT_SKILLS_DIR: dir }), greeterSkill());
    s = await startSlackStack('apr-e2e-owner', chatApprovalScript, () => ({
      SLACK_ADMIN_USERS: ADMIN,
      SANDBOT_APPROVERS: 'owner',
      SANDBOT_SKILLS_DIR: dir,
    }));
    chat = slackApprovalChat(s, CHANNEL);
  });
  afterAll(async () => {
    await s?.stop();
    await removeSkillVolumes(docker, s?.config.SANDBOT_INSTANCE ?? 'none');
  });

  it(
    'the thread’s owner may approve a skill, but a network request stays with the admins',
    TIMEOUT,
    async () => {
      const { askInThread, click, noteAt } = chat;
      const skill = await askInThread(OWNER, {
        kind: 'skill',
        skill: 'greeter',
        reason: 'to greet the team',
      });
      expect(skill.card.text).toContain('use the skill greeter');
      await click(skill.card, OWNER, 'approve', skill.id);
      await waitFor('the skill card edited', () =>
        skill.card.text.includes('Approved for this conversation by bob'),
      );
      expect(await resultWith(s.ollama, 'request_access (skill greeter)')).toContain(
        `approved by bob (user:slack:${OWNER}) for this conversation`,
      );

      const network = await askInThread(OWNER, { kind: 'network', host: HOST, reason: REASON });
      expect(await noteAt(await click(network.card, OWNER, 'approve', network.id))).toMatchObject({
        text: APPROVAL_REFUSAL,
      });
      expect(slackButtonIds(network.card)).toHaveLength(3);
      await click(network.card, ADMIN, 'deny', network.id);
      expect(await resultWith(s.ollama, `request_access (network ${HOST})`)).toContain(
        `denied by alice (user:slack:${ADMIN})`,
      );
      expect(await grantsOf(redis, s.config, network.conversation)).toEqual([]);
    },
  );
});

describe('approvals in Discord with a real worker (SANDBOT_APPROVERS=admins)', () => {
  let d: DiscordStack;
  let chat: ReturnType<typeof discordApprovalChat>;
  let store: ApprovalStore;
  beforeAll(async () => {
    // The stack's DISCORD_ADMIN_ROLE is the fake's admin role: alice has it, bob does not.
    d = await startDiscordStack('apr-e2e-discord', chatApprovalScript, {
      SANDBOT_APPROVAL_TIMEOUT_SECONDS: '10',
    });
    store = new ApprovalStore(redis, d.config.SANDBOT_INSTANCE);
    chat = discordApprovalChat(d);
  });
  afterAll(async () => {
    await d?.stop();
  });

  it(
    'refuses the owner, decides an admin’s double click once, and the worker grants and tells the model',
    TIMEOUT,
    async () => {
      const { alice, bob } = d.fake.users;
      const { askInThread, click, answerTo, posts } = chat;
      const { thread, card, id, conversation } = await askInThread(bob, {
        kind: 'network',
        host: HOST,
        reason: REASON,
      });
      expect(discordButtons(card).map((b) => [b.label, b.custom_id])).toEqual([
        ['Approve for this conversation', approvalButtonId(id, 'approve')],
        ['Approve for 1 hour', approvalButtonId(id, 'approve_hour')],
        ['Deny', approvalButtonId(id, 'deny')],
      ]);
      expect(card.content).toContain(`network access to ${HOST}`);
      expect(card.content).toContain(`The agent's reason (its own words, not checked): “${REASON}”`);

      // Under `admins` the thread's owner may not decide, even on their own thread.
      expect(await answerTo(click(card, bob, 'approve', id))).toEqual({
        type: 4,
        flags: EPHEMERAL,
        content: APPROVAL_REFUSAL,
      });
      expect((await store.get(id))?.status).toBe('pending');
      expect(discordButtons(card)).toHaveLength(3);

      const shown = structuredClone(card);
      const both = [click(card, alice, 'approve', id), click(shown, alice, 'approve', id)];
      await d.fake.waitFor(() => both.every((i) => i.callback), 'both answers');
      // One click decides (the card updated in its answer), the other is told it came too late.
      expect(both.map((i) => i.callback?.type).sort()).toEqual([4, 7]);
      const late = both.find((i) => i.callback?.type === 4);
      expect(late?.callback?.data?.flags).toBe(EPHEMERAL);
      expect(late?.callback?.data?.content).toMatch(
        /already decided: ✅ Approved for this conversation by alice at /,
      );

      expect(await resultWith(d.ollama, 'request_access (network')).toContain(
        `approved by alice (user:discord:${alice.id}) for this conversation: ${HOST} is granted`,
      );
      await d.fake.waitFor(
        () => posts(thread.id).find((m) => m.content.includes('model saw')),
        'the reply',
        60_000,
      );
      expect(await store.get(id)).toMatchObject({
        status: 'approved',
        scope: 'conversation',
        decidedByName: 'alice',
      });
      expect(card.content).toMatch(
        /✅ Approved for this conversation by alice at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC/,
      );
      expect(discordButtons(card)).toEqual([]);
      expect(posts(thread.id).filter((m) => m.content.includes('network access to'))).toHaveLength(1);
      expect(await grantsOf(redis, d.config, conversation)).toEqual([HOST]);
      const decisions = await waitFor('the decision audited', async () => {
        const found = await decisionsOf(d.config, conversation);
        return found.length > 0 && found;
      });
      expect(decisions.map((e) => e.actor)).toEqual([`user:discord:${alice.id}`]);
    },
  );

  it(
    'expires an undecided request as denied: the model hears it, the card says so, a late click is told',
    TIMEOUT,
    async () => {
      const { card, id, conversation } = await chat.askInThread(d.fake.users.bob, {
        kind: 'network',
        host: 'slow.example.test',
        reason: 'nobody answers',
      });
      const shown = structuredClone(card);
      expect(await resultWith(d.ollama, 'request_access (network slow.example.test)')).toContain(
        'expired without a decision: denied',
      );
      await d.fake.waitFor(
        () => card.content.includes('⌛ Expired without a decision: denied'),
        'the card edited to expired',
      );
      expect(discordButtons(card)).toEqual([]);
      const late = await chat.answerTo(chat.click(shown, d.fake.users.alice, 'approve', id));
      expect(late).toMatchObject({ type: 4, flags: EPHEMERAL });
      expect(late.content).toMatch(/expired before your click/);
      expect((await store.get(id))?.status).toBe('expired');
      expect(await grantsOf(redis, d.config, conversation)).toEqual([]);
    },
  );
});
