import { ConversationId } from '../contracts/conversation/id.js';

/** A command-line conversation id, parsed; a wrong one ends the command with exit 2 and an example. */
export function conversationArg(value: string): ConversationId {
  const parsed = ConversationId.safeParse(value);
  if (!parsed.success) {
    console.error(`sandbot: "${value}" is not a conversation id (e.g. web:alice, slack:T1:C1:1700000000.1)`);
    process.exit(2);
  }
  return parsed.data;
}
