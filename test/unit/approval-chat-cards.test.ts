import { describe, expect, it } from 'vitest';
import { discordApprovalCard, escapeDiscordMarkdown } from '../../adapters/discord/approval-card.js';
import { BlockActions } from '../../adapters/slack/approval-actions.js';
import { defuseMentions, slackApprovalCard } from '../../adapters/slack/approval-card.js';
import type { Approval } from '../../src/contracts/approvals/approval.js';

const pending: Approval = {
  id: 'apr_abcdefgh1234',
  conversation: 'slack:T1:C1:1700000000.000100' as Approval['conversation'],
  platform: 'slack',
  route: { team: 'T1', channel: 'C1', thread_ts: '1700000000.000100' },
  kind: 'network',
  target: 'pypi.org',
  reason: 'ping <!channel> & @here, see <https://evil.example|docs> or [docs](https://evil.example) **now**',
  turnId: 'turn-1',
  requestedAt: '2026-12-07T07:00:00.000Z',
  expiresAtMs: Date.parse('2026-12-07T07:15:00.000Z'),
  status: 'pending',
};

const approved: Approval = {
  ...pending,
  status: 'approved',
  scope: 'hour',
  decidedBy: 'user:slack:U1',
  decidedByName: 'alice',
  decidedAt: '2026-12-07T07:03:04.567Z',
};

describe('the Slack approval card', () => {
  it('shows the agent’s words as plain text, and escapes the notification text', () => {
    const card = slackApprovalCard(pending);
    const sections = card.blocks.filter((b) => b.type === 'section') as {
      text: { type: string; text: string };
    }[];
    expect(sections.map((s) => s.text.type)).toEqual(['plain_text', 'plain_text']);
    expect(sections[1]?.text.text).toContain('ping <!channel> & @\u200bhere');
    expect(card.text).not.toMatch(/<!channel>|<https:|@here/);
    expect(card.text).toContain('&lt;!channel&gt; &amp; @\u200bhere');
    const actions = card.blocks.find((b) => b.type === 'actions') as {
      elements: { action_id: string; style?: string; value: string }[];
    };
    expect(actions.elements.map((e) => [e.action_id, e.style, e.value])).toEqual([
      ['sandbot_approval:approve:apr_abcdefgh1234', 'primary', 'approve'],
      ['sandbot_approval:approve_hour:apr_abcdefgh1234', undefined, 'approve_hour'],
      ['sandbot_approval:deny:apr_abcdefgh1234', 'danger', 'deny'],
    ]);
  });

  it('once decided: the outcome with who and when, and no buttons', () => {
    const card = slackApprovalCard(approved);
    expect(card.blocks.some((b) => b.type === 'actions')).toBe(false);
    expect(JSON.stringify(card.blocks)).toContain('Approved for 1 hour by alice at 2026-12-07 07:03:04 UTC');
  });

  it('defuses @channel, @here and @everyone only', () => {
    expect(defuseMentions('@channel @Here @everyone @alice')).toBe(
      '@\u200bchannel @\u200bHere @\u200beveryone @alice',
    );
  });

  it('reads a block_actions payload', () => {
    const body = BlockActions.parse({
      type: 'block_actions',
      user: { id: 'U1', username: 'alice', team_id: 'T1' },
      actions: [{ action_id: 'sandbot_approval:deny:apr_abcdefgh1234', type: 'button' }],
      container: { channel_id: 'C1', message_ts: '1700000000.000200' },
    });
    expect(body.user.username).toBe('alice');
    expect(BlockActions.safeParse({ type: 'view_submission', user: { id: 'U1' }, actions: [] }).success).toBe(
      false,
    );
  });
});

describe('the Discord approval card', () => {
  it('quotes the agent’s words escaped, with three styled buttons', () => {
    const card = discordApprovalCard({ ...pending, platform: 'discord' });
    expect(card.content).toContain('\\[docs\\]\\(https://evil.example\\)');
    expect(card.content).toContain('\\*\\*now\\*\\*');
    expect(card.content).not.toContain('[docs](');
    expect(card.components[0]?.components.map((b) => [b.style, b.custom_id])).toEqual([
      [1, 'sandbot_approval:approve:apr_abcdefgh1234'],
      [2, 'sandbot_approval:approve_hour:apr_abcdefgh1234'],
      [4, 'sandbot_approval:deny:apr_abcdefgh1234'],
    ]);
  });

  it('once decided: the outcome and no components', () => {
    const card = discordApprovalCard({ ...approved, platform: 'discord' });
    expect(card.components).toEqual([]);
    expect(card.content).toContain('Approved for 1 hour by alice at 2026-12-07 07:03:04 UTC');
  });

  it('escapes markdown characters with a backslash', () => {
    expect(escapeDiscordMarkdown('a_b *c* `d` <@1> ~e~ |f| #g')).toBe(
      'a\\_b \\*c\\* \\`d\\` \\<\\@1\\> \\~e\\~ \\|f\\| \\#g',
    );
  });
});
