import type { webApi } from '@slack/bolt';
import type { Logger } from '../../src/contracts/log/logger.js';
import type { InboundMessage } from '../../src/contracts/protocol/inbound.js';
import { SLACK_TTL, type SlackKeys } from '../../src/contracts/redis/chat-keys.js';
import type { AdapterDeps } from '../../src/gateway/chat-adapter.js';
import { InOrder } from '../../src/gateway/in-order.js';
import { limitNotice } from '../../src/gateway/rate-limits.js';
import { type AccessPolicy, decideAccess, refusalText } from './access.js';
import { downloadAttachments } from './attachments.js';
import { classifyEvent, SlackEventBody, type SlackIntake } from './slack-event.js';

export interface MessageHandlerDeps {
  deps: AdapterDeps;
  client: webApi.WebClient;
  keys: SlackKeys;
  policy: AccessPolicy;
  botToken: string;
  logger: Logger;
}

/**
 * Turns `message` and `app_mention` events into queued messages. Bolt has already acked the event, so
 * this may take its time (downloads). The message id is Slack's channel + ts: whichever of the two
 * events (and any retry of either) arrives first is queued, the store refuses the others.
 */
export class SlackMessageHandler {
  /** Per conversation, messages are queued in the order they arrived here. */
  private readonly inOrder = new InOrder();

  constructor(private readonly d: MessageHandlerDeps) {}

  async onEvent(body: unknown, botUserId: string | undefined): Promise<void> {
    const parsed = SlackEventBody.safeParse(body);
    if (!parsed.success) {
      this.d.logger.debug(
        { issue: parsed.error.issues[0]?.message },
        'slack event not taken: unexpected shape',
      );
      return;
    }
    const intake = classifyEvent(parsed.data, botUserId);
    if (intake.kind === 'ignore') {
      this.d.logger.debug({ reason: intake.reason }, 'slack event ignored');
      return;
    }
    await this.inOrder.run(intake.conversation, () => this.consider(intake));
  }

  private async consider(intake: SlackIntake): Promise<void> {
    const { redis } = this.d.deps;
    if (intake.needsKnownThread && (await redis.exists(this.d.keys.thread(intake.conversation))) === 0)
      return;
    const access = decideAccess(this.d.policy, {
      teams: intake.teams,
      channel: intake.route.channel,
      user: intake.user,
    });
    if (!access.allowed) return this.refuse(intake, access.reason);
    await this.take(intake);
  }

  private async take(intake: SlackIntake): Promise<void> {
    const { config, redis, submit, blobs } = this.d.deps;
    const maxChars = config.SANDBOT_MAX_MESSAGE_CHARS;
    if (intake.text.length > maxChars) {
      return this.whisper(
        intake,
        `That message is longer than the ${maxChars} characters I take: attach it as a file instead.`,
      );
    }
    // Before the downloads: a refused message costs nothing more.
    if (!(await this.admitted(intake))) return;
    const attachments = await downloadAttachments(intake.files, {
      botToken: this.d.botToken,
      apiUrl: config.SLACK_API_URL,
      maxBytes: config.SANDBOT_FILE_MAX_BYTES,
      blobs,
    });
    if (intake.text === '' && attachments.files.length === 0) {
      const notes = attachments.notes.length ? `\n${attachments.notes.join('\n')}` : '';
      return this.whisper(intake, `Tell me what to do, e.g. "@sandbot list the files you have".${notes}`);
    }
    // Registered before the message is queued, so the thread's next message is never missed.
    if (!intake.dm) await redis.set(this.d.keys.thread(intake.conversation), '1', 'EX', SLACK_TTL.thread);
    const message: InboundMessage = {
      id: intake.messageId,
      conversation: intake.conversation,
      platform: 'slack',
      user: { id: intake.user, ...(await this.userName(intake)) },
      text: intake.text,
      receivedAt: new Date().toISOString(),
      route: intake.route,
      files: attachments.files,
    };
    let result: Awaited<ReturnType<AdapterDeps['submit']>>;
    try {
      result = await submit(message);
    } catch (error) {
      this.d.logger.error(
        { err: error, conversation: intake.conversation },
        'a Slack message could not be queued',
      );
      return this.whisper(
        intake,
        'I could not take that message: my queue is unavailable. Please try again in a moment.',
      );
    }
    if (result.status === 'duplicate') return;
    const { team, channel } = intake.route;
    await redis.set(
      this.d.keys.lastConversation(team, channel, intake.user),
      intake.conversation,
      'EX',
      SLACK_TTL.lastConversation,
    );
    await this.d.client.reactions
      .add({ channel, timestamp: intake.route.ts as string, name: 'eyes' })
      .catch((error) => this.d.logger.warn({ err: error }, 'the 👀 reaction failed'));
    if (attachments.notes.length) await this.whisper(intake, attachments.notes.join('\n'));
  }

  /**
   * Under the person's rate limits? If not, they are told once per wait (a flood gets one notice) and
   * the message is not taken; a limiter that cannot be asked (Redis down) refuses too, saying so.
   */
  private async admitted(intake: SlackIntake): Promise<boolean> {
    const admission = await this.d.deps.limits
      .admit({
        platform: 'slack',
        user: intake.user,
        messageId: intake.messageId,
        conversation: intake.conversation,
      })
      .catch((error: unknown) => {
        this.d.logger.error({ err: error, conversation: intake.conversation }, 'rate limits unavailable');
        return undefined;
      });
    if (admission?.allowed) return true;
    if (!admission) {
      await this.whisper(
        intake,
        'I could not take that message: my queue is unavailable. Please try again in a moment.',
      );
      return false;
    }
    this.d.logger.info(
      { limit: admission.limit, user: intake.user, conversation: intake.conversation, told: admission.tell },
      'slack: message refused by a rate limit',
    );
    if (admission.tell) {
      void this.d.deps.audit?.record({
        conversation: intake.conversation,
        actor: `user:slack:${intake.user}`,
        kind: 'limit.hit',
        data: { limit: admission.limit, max: admission.max },
      });
      await this.whisper(intake, limitNotice(admission));
    }
    return false;
  }

  /** One polite refusal per person and channel a day; every refusal is recorded. */
  private async refuse(intake: SlackIntake, reason: 'team' | 'channel' | 'user'): Promise<void> {
    const { team, channel } = intake.route;
    this.d.logger.warn(
      {
        audit: 'access_refused',
        platform: 'slack',
        team,
        teams: intake.teams,
        channel,
        user: intake.user,
        reason,
        conversation: intake.conversation,
      },
      'slack: access refused',
    );
    void this.d.deps.audit?.record({
      conversation: intake.conversation,
      actor: `user:slack:${intake.user}`,
      kind: 'access.refused',
      data: { reason, channel },
    });
    const refused = this.d.keys.refused(team, channel, intake.user);
    if (await this.d.deps.throttles.notices.first(refused, SLACK_TTL.refused)) {
      await this.whisper(intake, refusalText(reason));
    }
  }

  /** A message only the sender sees, in the thread it concerns. */
  private async whisper(intake: SlackIntake, text: string): Promise<void> {
    await this.d.client.chat
      .postEphemeral({
        channel: intake.route.channel,
        user: intake.user,
        text,
        ...(intake.route.thread_ts ? { thread_ts: intake.route.thread_ts } : {}),
      })
      .catch((error) => this.d.logger.warn({ err: error }, 'an ephemeral Slack message failed'));
  }

  /** The person's display name (cached a day): the agent reads who said what. */
  private async userName(intake: SlackIntake): Promise<{ name?: string }> {
    const key = this.d.keys.userName(intake.route.team, intake.user);
    const cached = await this.d.deps.redis.get(key);
    if (cached !== null) return cached === '' ? {} : { name: cached };
    const info = await this.d.client.users.info({ user: intake.user }).catch((error) => {
      this.d.logger.debug({ err: error }, 'users.info failed');
      return undefined;
    });
    const profile = info?.user?.profile;
    const name = (profile?.display_name || profile?.real_name || info?.user?.name || '').slice(0, 128);
    if (info) await this.d.deps.redis.set(key, name, 'EX', SLACK_TTL.userName);
    return name === '' ? {} : { name };
  }
}
