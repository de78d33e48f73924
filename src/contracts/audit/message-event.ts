import type { InboundMessage } from '../protocol/inbound.js';
import type { AuditInput } from './events.js';

/** The `message.received` event of a message: who, where (the conversation), what (its text only with content on). */
export function messageReceived(message: InboundMessage, content: boolean): AuditInput {
  return {
    conversation: message.conversation,
    actor: `user:${message.platform}:${message.user.id}`,
    kind: 'message.received',
    data: {
      messageId: message.id,
      platform: message.platform,
      ...(message.user.name ? { userName: message.user.name } : {}),
      chars: message.text.length,
      files: message.files.map((f) => ({ name: f.name, size: f.size })),
      ...(message.command ? { command: message.command } : {}),
      ...(content ? { text: message.text } : {}),
    },
  };
}
