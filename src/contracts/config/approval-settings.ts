import { z } from 'zod';
import { int } from './setting-fields.js';

/** The approval settings (request_access cards), spread into the schema (schema.ts) in this order. */
export const APPROVAL_SETTINGS = {
  SANDBOT_APPROVERS: z
    .enum(['admins', 'owner'])
    .default('admins')
    .describe(
      'Who may decide an approval card: admins (SLACK_ADMIN_USERS, DISCORD_ADMIN_ROLE, the web with the API token); owner also lets the person who started the thread decide requests for skills and sub-agents (never network).',
    ),
  SANDBOT_APPROVAL_TIMEOUT_SECONDS: int(10, 86_400)
    .default(900)
    .describe('An undecided approval request expires after this many seconds, as denied.'),
};
