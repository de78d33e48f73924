import type { AuditInput } from '../../src/contracts/audit/events.js';
import type { ConversationId } from '../../src/contracts/conversation/id.js';

/** A finished bash tool call of `actor`, as a turn audits it. */
export const toolCall = (
  conversation: ConversationId,
  command: string,
  actor: AuditInput['actor'] = 'agent',
): AuditInput => ({
  conversation,
  turnId: `${conversation}#1-1`,
  actor,
  kind: 'tool.call',
  data: { name: 'bash', args: { command }, reported: true, ok: true, result: 'ok' },
});
