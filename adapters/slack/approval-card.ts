import type { types } from '@slack/bolt';
import type { Approval } from '../../src/contracts/approvals/approval.js';
import { approvalCard } from '../../src/contracts/approvals/approval-card.js';
import { escapeForSlack } from './slack-text.js';

/**
 * An approval card as Slack Block Kit: the title and the agent's reason as `plain_text` (Slack parses
 * no mentions, links or markup there), then the buttons while pending, or the outcome once decided.
 * The message's `text` (notifications, screen readers) is mrkdwn, so it is escaped: the agent's words
 * cannot ping `<!channel>` or a person, nor hide a link.
 */
export interface SlackCard {
  text: string;
  blocks: types.KnownBlock[];
}

/** Mention-like words left as plain text even where Slack would link them (`@channel` with link_names). */
export function defuseMentions(text: string): string {
  return text.replace(/@(channel|here|everyone)\b/gi, '@\u200b$1');
}

function plain(text: string): types.PlainTextElement {
  return { type: 'plain_text', text: defuseMentions(text).slice(0, 3000) };
}

export function slackApprovalCard(approval: Approval): SlackCard {
  const card = approvalCard(approval);
  const blocks: types.KnownBlock[] = [
    { type: 'section', text: plain(card.title) },
    { type: 'section', text: plain(card.reason) },
  ];
  if (card.outcome) blocks.push({ type: 'context', elements: [plain(card.outcome)] });
  if (card.buttons.length > 0) {
    blocks.push({
      type: 'actions',
      block_id: `sandbot_approval:${approval.id}`,
      elements: card.buttons.map(
        (button): types.Button => ({
          type: 'button',
          action_id: button.id,
          value: button.decision,
          text: { type: 'plain_text', text: button.label },
          // Slack knows primary and danger; the default look is no style at all.
          ...(button.style === 'secondary' ? {} : { style: button.style }),
        }),
      ),
    });
  }
  const text = [card.title, card.reason, card.outcome].filter(Boolean).join('\n');
  return { text: escapeForSlack(defuseMentions(text)), blocks };
}
