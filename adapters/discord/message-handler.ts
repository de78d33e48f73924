import { DISCORD_TTL } from '../../src/contracts/redis/chat-keys.js';
import { limitNotice } from '../../src/gateway/rate-limits.js';
import { takeAttachments } from './attachments.js';
import { channelRoute, discordConversationId, threadName } from './conversation.js';
import { admitMessage, type HandlerContext, logRefusal, submitMessage } from './handler-context.js';
import { MessageCreate, toUserMessage, type UserMessage } from './payloads.js';
import { planMessage } from './plans.js';

type Message = Extract<UserMessage, { kind: 'message' }>;

/**
 * MESSAGE_CREATE → the queue: DMs and sandbot's threads are conversations; a mention in a channel starts
 * a thread from the message. Attachments go to the blob store, size-capped.
 */
export async function handleMessageCreate(context: HandlerContext, raw: unknown): Promise<void> {
  const { logger } = context.deps;
  const botId = context.botId();
  if (!botId) return;
  const parsed = MessageCreate.safeParse(raw);
  if (!parsed.success) {
    logger.warn(
      { issues: parsed.error.issues.slice(0, 3) },
      'discord: MESSAGE_CREATE not understood; ignored',
    );
    return;
  }
  const message = toUserMessage(parsed.data, botId);
  if (message.kind === 'ignore') return;
  const place = await context.channels.placeOf(message.channelId, message.guildId);
  const trackedThread = place.kind === 'thread' && (await context.threads.has(place.channelId));
  const plan = planMessage(message, place, { botId, trackedThread, policy: context.policy });

  if (plan.kind === 'ignore') return;
  if (plan.kind === 'refuse') {
    logRefusal(context, { user: message.user.id, place, reason: plan.reason, via: 'message' });
    const refused = context.keys.refused(message.user.id, message.channelId);
    if (await context.deps.throttles.notices.first(refused, DISCORD_TTL.refused))
      await context.api.postMessage(message.channelId, { content: `<@${message.user.id}> ${plan.message}` });
    return;
  }
  if (message.text === '' && message.attachments.length === 0) {
    await context.api.postMessage(message.channelId, {
      content: 'Tell me what to do: mention me with a task, e.g. `@sandbot count the lines in notes.txt`.',
    });
    return;
  }

  // Before a thread is opened or files fetched: a refused message costs nothing more.
  const admission = await admitMessage(context, {
    user: message.user.id,
    messageId: message.id,
    ...(plan.kind === 'submit' ? { conversation: plan.conversation } : { startsConversation: true }),
  });
  if (!admission?.allowed) {
    if (!admission || admission.tell) {
      const text = admission
        ? limitNotice(admission)
        : 'sandbot could not take this message right now; please send it again.';
      await context.api.postMessage(message.channelId, { content: `<@${message.user.id}> ${text}` });
    }
    return;
  }

  let target = plan.kind === 'submit' ? plan : undefined;
  if (plan.kind === 'open-thread') {
    const threadId = await context.api.startThread(plan.channelId, message.id, threadName(message.text));
    await context.threads.add(threadId);
    target = {
      kind: 'submit',
      conversation: discordConversationId(plan.guildId, threadId, plan.channelId),
      channelId: threadId,
      guildId: plan.guildId,
      track: false,
    };
  }
  if (!target) return;
  // Taken-on threads are remembered for 90 days from their last message.
  if (target.track || (target.guildId && plan.kind === 'submit' && trackedThread)) {
    await context.threads.add(target.channelId);
  }
  await submitWithFiles(context, message, target);
}

async function submitWithFiles(
  context: HandlerContext,
  message: Message,
  target: { conversation: ReturnType<typeof discordConversationId>; channelId: string; guildId?: string },
): Promise<void> {
  const { config } = context.deps;
  try {
    const taken = await takeAttachments(message.attachments, {
      blobs: context.deps.blobs,
      maxBytes: config.SANDBOT_FILE_MAX_BYTES,
      apiUrl: config.DISCORD_API_URL,
    });
    const notes = taken.skipped.map((s) => `[attachment not taken: ${s}]`);
    await submitMessage(context, {
      id: message.id,
      conversation: target.conversation,
      user: message.user,
      text: [message.text, ...notes].filter(Boolean).join('\n'),
      route: channelRoute(target.channelId, target.guildId),
      files: taken.files,
    });
    if (taken.skipped.length) {
      await context.api.postMessage(target.channelId, {
        content: `Some attachments were not taken:\n${taken.skipped.map((s) => `• ${s}`).join('\n')}`,
      });
    }
  } catch (error) {
    context.deps.logger.error({ err: error, messageId: message.id }, 'discord: message not queued');
    // Silence would look like sandbot is working on it.
    await context.api
      .postMessage(target.channelId, {
        content: 'sandbot could not take this message right now; please send it again.',
      })
      .catch(() => undefined);
  }
}
