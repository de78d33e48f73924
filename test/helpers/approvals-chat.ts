import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { discordConversationId } from '../../adapters/discord/conversation.js';
import { slackConversationId } from '../../adapters/slack/slack-event.js';
import {
  type Approval,
  type ApprovalDecision,
  type ApprovalKind,
  approvalButtonId,
  parseApprovalButtonId,
} from '../../src/contracts/approvals/approval.js';
import type { Config } from '../../src/contracts/config/schema.js';
import type { ConversationId } from '../../src/contracts/conversation/id.js';
import type { OutboundEvent } from '../../src/contracts/protocol/outbound.js';
import { AuditJournal } from '../../src/shared/audit/journal.js';
import { parseEvents } from '../../src/shared/audit/summary.js';
import type { ApprovalInput, ApprovalStore } from '../../src/shared/stores/approval-store.js';
import { NetworkPolicyStore } from '../../src/shared/stores/policy-store.js';
import type {
  FakeMessage as DiscordMessage,
  FakeInteraction,
  FakeUser,
} from '../../testkit/fakes/fake-discord-state.js';
import type { FakeChatRequest, FakeOllama, FakeStep } from '../../testkit/fakes/fake-ollama.js';
import { type FakeMessage, waitFor } from '../../testkit/fakes/fake-slack.js';
import { blockActions, personMessage } from '../../testkit/fakes/fake-slack-events.js';
import { approvalScript, ask } from './approvals.js';
import type { DiscordStack } from './discord-stack.js';
import type { SlackStack } from './slack-stack.js';

/**
 * The approvals tests' fake model (approvalScript) in a chat: the user's text may come with the chat's
 * own wrapping (a mention left over, a speaker's name), so an `ASK …` message is read from its `ASK`.
 */
export function chatApprovalScript(request: FakeChatRequest): FakeStep {
  const messages = request.messages.map((m) => {
    const at = m.role === 'user' ? m.content.indexOf('ASK ') : -1;
    return at > 0 ? { ...m, content: m.content.slice(at) } : m;
  });
  return approvalScript({ ...request, messages });
}

/** The results of request_access the model has read so far, oldest first. */
export function accessResults(ollama: FakeOllama): string[] {
  const seen = ollama
    .chatRequests()
    .flatMap((r) => r.messages)
    .filter((m) => m.role === 'tool' && m.tool_name === 'request_access')
    .map((m) => m.content);
  return [...new Set(seen)];
}

/** The conversation's own network grants (what an approval "for this conversation" adds). */
export function grantsOf(redis: Redis, config: Config, conversation: ConversationId): Promise<string[]> {
  return new NetworkPolicyStore(redis, config.SANDBOT_INSTANCE, []).grantsFor(conversation);
}

/** The conversation's `approval.decided` audit events. */
export async function decisionsOf(config: Config, conversation: ConversationId) {
  const journal = new AuditJournal(config.SANDBOT_AUDIT_DIR, config.SANDBOT_INSTANCE);
  const events = parseEvents((await journal.read(conversation)) ?? '');
  return events.filter((e) => e.kind === 'approval.decided');
}

/**
 * Approval cards in a Slack stack's thread: `askInThread` has `owner` mention the bot with an `ASK`
 * message in a new thread and waits for the card; `click` sends a button click as Slack sends it
 * (Socket Mode `block_actions`), resolving with its response_url, where ephemeral notes go.
 */
export function slackApprovalChat(s: SlackStack, channel: string) {
  const notesAt = (urls: string[]) => s.fake.responses.filter((r) => urls.includes(String(r.url)));
  return {
    notesAt,
    noteAt: (url: string) =>
      waitFor(`an ephemeral note at ${url}`, () => {
        const [note] = notesAt([url]);
        return note && { type: note.response_type, replace: note.replace_original, text: String(note.text) };
      }),
    async askInThread(owner: string, args: unknown) {
      const text = `<@${s.fake.botUserId}> ${ask(args)}`;
      const m = personMessage(s.fake, { channel, user: owner, text });
      await s.sender.event(m.mention);
      const card = await waitFor(
        'the approval card in the thread',
        () => s.fake.botMessages(channel, m.ts).find((p) => slackButtonIds(p).length > 0),
        60_000,
      );
      const id = parseApprovalButtonId(slackButtonIds(card)[0] ?? '')?.id ?? '';
      return { ts: m.ts, card, id, conversation: slackConversationId(s.fake.team, channel, m.ts) };
    },
    async click(card: FakeMessage, user: string, decision: ApprovalDecision, id: string) {
      const payload = blockActions(s.fake, { user, message: card, actionId: approvalButtonId(id, decision) });
      const status = await s.sender.interaction(payload);
      if (status !== 200) throw new Error(`the click was answered ${status}`);
      return String(payload.response_url);
    },
  };
}

/** The action ids of a Slack card's buttons (none once decided). */
export const slackButtonIds = (m: FakeMessage) =>
  ((m.blocks?.find((b) => b.type === 'actions')?.elements ?? []) as { action_id: string }[]).map(
    (e) => e.action_id,
  );

/** Discord's flag of a message only its reader sees. */
export const EPHEMERAL = 64;

/** The buttons of a Discord card (none once decided). */
export const discordButtons = (m: DiscordMessage) =>
  ((m.components ?? []) as { components: { custom_id: string; label: string }[] }[]).flatMap(
    (row) => row.components,
  );

/**
 * Approval cards in a Discord stack's threads: `askInThread` has `owner` start a thread and mention the
 * bot there with an `ASK` message, and waits for the card; `click` is a button click as Discord sends it
 * (INTERACTION_CREATE type 3); `answerTo` is the click's answer (type 4 with flags 64: an ephemeral note).
 */
export function discordApprovalChat(d: DiscordStack) {
  const { fake } = d;
  /** The bot's messages in a channel but for ephemeral answers (only the clicker sees those). */
  const posts = (channelId: string) => fake.botMessages(channelId).filter((m) => (m.flags & EPHEMERAL) === 0);
  return {
    posts,
    async askInThread(owner: FakeUser, args: unknown) {
      const thread = fake.userThread(fake.channels.general.id, 'a task', owner);
      fake.userMessage({ channelId: thread.id, content: ask(args), author: owner, mention: true });
      const card = await fake.waitFor(
        () => posts(thread.id).find((m) => discordButtons(m).length > 0),
        'the approval card in the thread',
        60_000,
      );
      const id = parseApprovalButtonId(discordButtons(card)[0]?.custom_id ?? '')?.id ?? '';
      const conversation = discordConversationId(fake.guild.id, thread.id, fake.channels.general.id);
      return { thread, card, id, conversation };
    },
    click: (card: DiscordMessage, user: FakeUser, decision: ApprovalDecision, id: string) =>
      fake.click({ message: card, customId: approvalButtonId(id, decision), user }),
    answerTo: (interaction: FakeInteraction) =>
      fake.waitFor(() => {
        const callback = interaction.callback;
        return (
          callback && { type: callback.type, flags: callback.data?.flags, content: callback.data?.content }
        );
      }, 'the click’s answer'),
  };
}

/** What a test's pending request may change from its defaults (a network request for pypi.org, 15 min). */
export interface PendingOptions {
  kind?: ApprovalKind;
  reason?: string;
  timeoutSeconds?: number;
  now?: number;
}

/**
 * A pending request of a turn in `at`'s conversation (a skill request is for pdf-tools), and its
 * approval event as the worker sends it (for the approval as given, or as it is now).
 */
export async function pendingRequest(
  store: ApprovalStore,
  at: Pick<ApprovalInput, 'conversation' | 'platform' | 'route'>,
  options: PendingOptions,
) {
  const turnId = `turn-${randomBytes(4).toString('hex')}`;
  const approval = await store.create(
    {
      ...at,
      kind: options.kind ?? 'network',
      target: options.kind === 'skill' ? 'pdf-tools' : 'pypi.org',
      reason: options.reason ?? 'to install the requests package',
      turnId,
      timeoutSeconds: options.timeoutSeconds ?? 900,
    },
    options.now,
  );
  const event = (a: Approval = approval): OutboundEvent => ({
    type: 'approval',
    id: `${turnId}:approval:${a.id}:${a.status}`,
    conversation: a.conversation,
    platform: at.platform,
    route: a.route,
    turnId,
    approval: a,
  });
  return { approval, event };
}
