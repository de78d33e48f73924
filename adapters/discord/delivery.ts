import { UnrecoverableError } from 'bullmq';
import type { Logger } from '../../src/contracts/log/logger.js';
import type { OutboundEvent } from '../../src/contracts/protocol/outbound.js';
import type { DiscordKeys } from '../../src/contracts/redis/chat-keys.js';
import { type ApprovalEvent, deliverApprovalCard } from '../../src/gateway/approval-delivery.js';
import type { AdapterDeps } from '../../src/gateway/chat-adapter.js';
import type { DeliveryOnce } from '../../src/gateway/delivery-once.js';
import type { ApprovalStore } from '../../src/shared/stores/approval-store.js';
import { discordApprovalCard } from './approval-card.js';
import { DiscordRoute } from './conversation.js';
import type { DiscordApi } from './discord-api.js';
import { ThreadRegistry } from './handler-context.js';
import { ProgressMessages, type ProgressOptions } from './progress-message.js';
import { ReplySender } from './reply-sender.js';
import { ScheduledThreads } from './scheduled-thread.js';

/**
 * Delivers outbound events into Discord: progress into the turn's progress message (and typing), the
 * reply or error as posts. Every post goes through the deliver-once ledger, so retries post nothing twice.
 */
export class DiscordDelivery {
  constructor(
    private readonly progress: ProgressMessages,
    private readonly replies: ReplySender,
    private readonly scheduledThreads: ScheduledThreads,
    private readonly cards: { api: DiscordApi; approvals: ApprovalStore; ledger: DeliveryOnce },
  ) {}

  /** The approval card in the conversation's channel, posted once and edited in place as it ends. */
  private approvalCard(event: ApprovalEvent, route: DiscordRoute): Promise<void> {
    const { api, approvals, ledger } = this.cards;
    return deliverApprovalCard(event, {
      approvals,
      claims: ledger,
      poster: {
        platform: 'discord',
        post: async (approval) => ({
          channelId: route.channelId,
          messageId: await api.postCard(route.channelId, discordApprovalCard(approval)),
        }),
        edit: (ref, approval) =>
          api.editCard(ref.channelId ?? route.channelId, ref.messageId ?? '', discordApprovalCard(approval)),
      },
    });
  }

  async deliver(event: OutboundEvent): Promise<void> {
    const parsed = DiscordRoute.safeParse(event.route);
    if (!parsed.success) {
      throw new UnrecoverableError(
        `discord event ${event.id} has no Discord route (channelId): it cannot be delivered`,
      );
    }
    const route = parsed.data;
    const turnId = event.turnId ?? event.id;
    if (event.type === 'thread_start') return this.scheduledThreads.start(event, route);
    if (event.type === 'approval') return this.approvalCard(event, route);
    if (event.type === 'progress') return this.progress.progress(event, route);
    await this.progress.finish(turnId, route);
    if (event.type === 'reply') return this.replies.send(event.id, route, event.text, event.files ?? []);
    return this.replies.send(event.id, route, `⚠️ ${event.message}`);
  }

  /** Stops the progress timers (the adapter is stopping). */
  close(): void {
    this.progress.close();
  }
}

export function createDiscordDelivery(
  deps: AdapterDeps,
  pieces: { api: DiscordApi; keys: DiscordKeys; logger: Logger; progress?: Partial<ProgressOptions> },
): DiscordDelivery {
  const { api, keys, logger } = pieces;
  const ledger = deps.deliveryOnce('discord');
  const { editIntervalMs, ...typing }: ProgressOptions = {
    editIntervalMs: 1500,
    typingIntervalMs: 8000,
    typingMaxMs: deps.config.SANDBOX_TURN_TIMEOUT_SECONDS * 1000,
    ...pieces.progress,
  };
  const edits = deps.throttles.editPacer(editIntervalMs);
  return new DiscordDelivery(
    new ProgressMessages(api, deps.redis, ledger, keys, edits, logger, typing),
    new ReplySender(api, ledger, deps.blobs),
    new ScheduledThreads(api, ledger, new ThreadRegistry(deps.redis, keys), (message) =>
      deps.submit(message),
    ),
    { api, approvals: deps.approvals, ledger },
  );
}
