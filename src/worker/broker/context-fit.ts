import type { ChatMessage } from '../../contracts/protocol/agent.js';

/**
 * Which messages of a model request fit the model's context window, decided without a tokenizer.
 * The system prompt, the tools, the latest user message (the task at hand) and the newest step are
 * always sent; when the rest does not fit, the oldest messages are folded (into one summary message,
 * made elsewhere) until it does. A tool result never goes without the call it answers.
 */

/**
 * Characters per token, on the safe side: English prose runs near 4 with common tokenizers, code and
 * JSON nearer 3. Erring low only folds a little early; erring high lets the server cut the prompt.
 */
export const CHARS_PER_TOKEN = 3;
/** A chat template's wrapping of each message (role markers, separators). */
const MESSAGE_OVERHEAD_TOKENS = 8;

export function estimateTokens(text: string): number {
  return Math.ceil(text.length / CHARS_PER_TOKEN);
}

export function messageTokens(message: ChatMessage): number {
  const calls = message.tool_calls?.length ? JSON.stringify(message.tool_calls) : '';
  return MESSAGE_OVERHEAD_TOKENS + estimateTokens(message.content + calls + (message.tool_name ?? ''));
}

export function messagesTokens(messages: readonly ChatMessage[]): number {
  return messages.reduce((sum, message) => sum + messageTokens(message), 0);
}

/**
 * How much to scale estimates by for a model, after a request: the largest ratio of the tokens the
 * server counted to the estimate, between 1 and 2. Only the largest: a server reusing a cached prompt
 * counts fewer, which says nothing about the estimate; and never below 1 (the estimate is the floor).
 */
export function calibrate(scale: number, estimated: number, reported: number | undefined): number {
  if (!reported || estimated < 100) return scale;
  return Math.min(2, Math.max(scale, reported / estimated));
}

/** Room left for the answer: a quarter of the window, at most 4096 tokens. */
export function answerReserve(contextTokens: number): number {
  return Math.min(4096, Math.floor(contextTokens / 4));
}

/** What the folded messages' summary may take in the request, in tokens. */
export function summaryAllowance(budgetTokens: number): number {
  return Math.max(64, Math.min(400, Math.floor(budgetTokens / 6)));
}

export interface FitInput {
  /** The conversation's messages as the sandbox sent them (system messages are never among them). */
  messages: readonly ChatMessage[];
  /** The system prompt and the tool definitions: sent whatever happens. */
  fixedTokens: number;
  /** Tokens the whole prompt may take (the window less the answer's reserve). */
  budgetTokens: number;
}

export interface FitPlan {
  /** The oldest messages, to be replaced by one summary message (none: everything fits). */
  folded: ChatMessage[];
  /** What is sent after the summary, in order: the latest user message is always among them. */
  kept: ChatMessage[];
  /** False when even the messages that are always sent overflow the budget (sent anyway). */
  fits: boolean;
}

/**
 * Splits `messages` into groups that go or stay together: an assistant message with tool calls and the
 * tool results that follow it; any other message alone.
 */
export function toolGroups(messages: readonly ChatMessage[]): ChatMessage[][] {
  const groups: ChatMessage[][] = [];
  for (const message of messages) {
    const last = groups.at(-1);
    const opener = last?.[0];
    if (message.role === 'tool' && opener?.role === 'assistant' && opener.tool_calls?.length) {
      last?.push(message);
    } else {
      groups.push([message]);
    }
  }
  return groups;
}

function lastUserIndex(messages: readonly ChatMessage[]): number {
  for (let i = messages.length - 1; i >= 0; i--) if (messages[i]?.role === 'user') return i;
  return -1;
}

/**
 * Once folding, fold until the messages kept take at most this share of the room for them: folding only
 * just enough would make the next request fold again (one more summary request per request).
 */
export const FOLD_TARGET = 0.6;

/** Tokens the messages kept after a fold may take (besides the summary). */
export function foldTarget(input: FitInput): number {
  const room = input.budgetTokens - input.fixedTokens - summaryAllowance(input.budgetTokens);
  return Math.floor(room * FOLD_TARGET);
}

/**
 * The plan for one request. When it does not fit, groups are folded oldest first until the rest takes
 * at most `foldTarget` (the summary has its own allowance). The newest group is never folded, nor the
 * latest user message: it stays, after the summary, even when earlier steps of its turn are folded
 * (the summary is given it too).
 */
export function fitMessages(input: FitInput): FitPlan {
  const messages = input.messages.filter((m) => m.role !== 'system');
  const total = input.fixedTokens + messagesTokens(messages);
  if (total <= input.budgetTokens) return { folded: [], kept: messages, fits: true };
  const user = lastUserIndex(messages);
  const userMessage = user >= 0 ? messages[user] : undefined;
  const userTokens = userMessage ? messageTokens(userMessage) : 0;
  const groups = indexedGroups(messages);
  const target = foldTarget(input);
  let rest = messagesTokens(messages);
  let foldedGroups = 0;
  // The newest group always stays; a group holding the user message stays in part (the message).
  while (foldedGroups < groups.length - 1 && rest > target) {
    const group = groups[foldedGroups] as IndexedGroup;
    rest -= group.tokens - (group.start <= user && user < group.end ? userTokens : 0);
    foldedGroups += 1;
  }
  const cut = groups[foldedGroups]?.start ?? messages.length;
  // Folding the user message alone would only add a summary: nothing is folded then.
  if (cut === 0 || (cut === 1 && user === 0)) return { folded: [], kept: messages, fits: false };
  const folded = messages.slice(0, cut);
  const kept = messages.slice(cut);
  if (userMessage && user < cut) kept.unshift(userMessage);
  return { folded, kept, fits: planTokens(input, { folded, kept }) <= input.budgetTokens };
}

/** What a plan's request takes: the fixed part, the summary's allowance if any, and the kept messages. */
export function planTokens(input: FitInput, plan: Pick<FitPlan, 'folded' | 'kept'>): number {
  const summary = plan.folded.length > 0 ? summaryAllowance(input.budgetTokens) : 0;
  return input.fixedTokens + summary + messagesTokens(plan.kept);
}

interface IndexedGroup {
  start: number;
  end: number;
  tokens: number;
}

function indexedGroups(messages: readonly ChatMessage[]): IndexedGroup[] {
  let start = 0;
  return toolGroups(messages).map((group) => {
    const indexed = { start, end: start + group.length, tokens: messagesTokens(group) };
    start = indexed.end;
    return indexed;
  });
}
