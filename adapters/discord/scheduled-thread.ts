import type { InboundMessage } from '../../src/contracts/protocol/inbound.js';
import type { OutboundEvent } from '../../src/contracts/protocol/outbound.js';
import type { DeliveryOnce } from '../../src/gateway/delivery-once.js';
import { channelRoute, type DiscordRoute, discordConversationId, threadName } from './conversation.js';
import type { DiscordApi } from './discord-api.js';
import type { ThreadRegistry } from './handler-context.js';

/**
 * A scheduled run in a thread of its own: its title posted in the schedule's channel, a thread started
 * on that post, the run submitted there. One claim around all three: a failed step starts over on the
 * retry rather than leave a thread without its run.
 */
export class ScheduledThreads {
  constructor(
    private readonly api: DiscordApi,
    private readonly ledger: DeliveryOnce,
    private readonly threads: ThreadRegistry,
    private readonly submit: (message: InboundMessage) => Promise<unknown>,
  ) {}

  async start(event: Extract<OutboundEvent, { type: 'thread_start' }>, route: DiscordRoute): Promise<void> {
    // A schedule made inside a thread is filed under the thread's channel: runs start threads there.
    const [, guild, parent, thread] = event.conversation.split(':');
    const channelId = thread ? (parent ?? route.channelId) : route.channelId;
    const guildId = route.guildId ?? (guild !== 'dm' ? guild : undefined);
    await this.ledger.once(event.id, async () => {
      const messageId = await this.api.postMessage(channelId, { content: event.title });
      const threadId = await this.api.startThread(channelId, messageId, threadName(event.run.text));
      await this.threads.add(threadId);
      await this.submit({
        ...event.run,
        conversation: discordConversationId(guildId, threadId, channelId),
        route: channelRoute(threadId, guildId),
      });
    });
  }
}
