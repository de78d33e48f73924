import type { Config } from '../../src/contracts/config/schema.js';
import { createLogger } from '../../src/contracts/log/logger.js';
import type { OutboundEvent } from '../../src/contracts/protocol/outbound.js';
import type { ChatAdapter } from '../../src/gateway/chat-adapter.js';
import { OutboundDispatcher } from '../../src/gateway/outbound-dispatcher.js';
import { OutboundQueue } from '../../src/shared/queue/outbound-queue.js';
import { createRedis } from '../../src/shared/redis/connection.js';

/**
 * Runs `work` with the real outbound path to one adapter: events published to the outbound queue are
 * delivered (and retried with backoff) by a dispatcher, as the gateway does.
 */
export async function withOutboundDelivery(
  config: Config,
  adapter: ChatAdapter,
  work: (publish: (event: OutboundEvent) => Promise<void>) => Promise<void>,
): Promise<void> {
  const connection = createRedis(config.SANDBOT_REDIS_URL, 'test-outbound');
  const queue = new OutboundQueue(connection, config.SANDBOT_INSTANCE);
  const dispatcher = new OutboundDispatcher(
    connection,
    config.SANDBOT_INSTANCE,
    new Map([[adapter.platform, adapter]]),
    createLogger(config),
  );
  dispatcher.start();
  try {
    await work((event) => queue.publish(event));
  } finally {
    await dispatcher.stop();
    await queue.close();
    connection.disconnect();
  }
}
