import type { Approval } from '../../src/contracts/approvals/approval.js';
import { approvalCard } from '../../src/contracts/approvals/approval-card.js';

/** A message with components, as the REST API takes it (API v10). */
export interface DiscordCard {
  content: string;
  components: DiscordActionRow[];
}

export interface DiscordActionRow {
  type: 1;
  components: { type: 2; style: number; label: string; custom_id: string }[];
}

/** Button styles (discord-api-types ButtonStyle). */
const BUTTON_STYLE = { primary: 1, secondary: 2, danger: 4 } as const;

/**
 * Markdown the agent's words could use to look like something else: masked links `[label](url)`,
 * headings, quotes, spoilers, code. Escaped with a backslash, Discord shows the characters as typed.
 */
export function escapeDiscordMarkdown(text: string): string {
  return text.replace(/[\\`*_~|[\]()<>#@]/g, (c) => `\\${c}`);
}

/**
 * An approval card as a Discord message: the title, the agent's reason quoted and escaped (pings are
 * off for every post anyway: allowed_mentions none), then an action row of three buttons while
 * pending, or the outcome line and no buttons once it ended.
 */
export function discordApprovalCard(approval: Approval): DiscordCard {
  const card = approvalCard(approval);
  // The label before the quote is ours; the quoted words are the agent's.
  const quote = card.reason.indexOf('“');
  const reason =
    quote < 0
      ? escapeDiscordMarkdown(card.reason)
      : `${card.reason.slice(0, quote)}${escapeDiscordMarkdown(card.reason.slice(quote))}`;
  const lines = [`**${escapeDiscordMarkdown(card.title)}**`, `> ${reason}`];
  if (card.outcome) lines.push(escapeDiscordMarkdown(card.outcome));
  return {
    content: lines.join('\n').slice(0, 2000),
    components:
      card.buttons.length === 0
        ? []
        : [
            {
              type: 1,
              components: card.buttons.map((button) => ({
                type: 2,
                style: BUTTON_STYLE[button.style],
                label: button.label,
                custom_id: button.id,
              })),
            },
          ],
  };
}
