import { randomUUID } from 'node:crypto';
import { webConversationId } from '../../src/contracts/conversation/id.js';
import type { InboundMessage } from '../../src/contracts/protocol/inbound.js';

/** A web-chat message as the gateway would queue it; `extra` sets or overrides fields (files, command…). */
export function webMessage(
  session: string,
  text: string,
  extra: Partial<InboundMessage> = {},
): InboundMessage {
  return {
    id: randomUUID(),
    conversation: webConversationId(session),
    platform: 'web',
    user: { id: 'u1' },
    text,
    receivedAt: new Date().toISOString(),
    route: {},
    files: [],
    ...extra,
  };
}
