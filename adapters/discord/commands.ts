/**
 * sandbot's slash commands, as registered with Discord (application command JSON, API v10). Admin-only
 * commands are checked against DISCORD_ADMIN_ROLE by the adapter, not hidden by Discord permissions, so
 * a refusal is explained rather than the command missing.
 */

const STRING = 3;
const BOOLEAN = 5;
/** Usable in servers (0) and in the bot's DMs (1); installed to servers only (0). */
const everywhere = { contexts: [0, 1], integration_types: [0] };
const serversOnly = { contexts: [0], integration_types: [0] };

export const SLASH_COMMANDS = [
  {
    name: 'ask',
    description: 'Hand sandbot a task: it opens a thread and works on it there',
    options: [
      { type: STRING, name: 'task', description: 'What sandbot should do', required: true, max_length: 4000 },
    ],
    ...everywhere,
  },
  {
    name: 'run',
    description: 'Run a shell command in this conversation’s sandbox, without the model (admin)',
    options: [
      {
        type: STRING,
        name: 'command',
        description: 'The command, run with bash',
        required: true,
        max_length: 4000,
      },
    ],
    ...serversOnly,
  },
  {
    name: 'status',
    description: 'Is sandbot working in this conversation, and what is waiting?',
    ...everywhere,
  },
  {
    name: 'reset',
    description: 'Start this conversation afresh: wipe its workspace and history',
    ...everywhere,
  },
  { name: 'stop', description: 'Stop the turn sandbot is running in this conversation', ...everywhere },
  {
    name: 'tasks',
    description: 'The tasks in this channel: status, who asked, age and a link to each thread',
    ...serversOnly,
  },
  {
    name: 'done',
    description: 'Close this task (its owner or an admin); an ephemeral channel’s task is wiped',
    ...serversOnly,
  },
  {
    name: 'kill',
    description: 'Kill this conversation’s sandbox at once and quarantine it (admin)',
    ...serversOnly,
  },
  {
    name: 'network',
    description: 'Show or change which hosts this conversation may reach (admin)',
    options: [
      { type: STRING, name: 'hosts', description: 'Hosts to allow, comma-separated', required: false },
    ],
    ...serversOnly,
  },
  {
    name: 'skill',
    description: 'List, enable or disable vetted skills in this conversation (admin)',
    options: [
      {
        type: STRING,
        name: 'action',
        description: 'What to do (default: list)',
        required: false,
        choices: [
          { name: 'list', value: 'list' },
          { name: 'enable', value: 'enable' },
          { name: 'disable', value: 'disable' },
        ],
      },
      {
        type: STRING,
        name: 'name',
        description: 'The skill, e.g. weather or weather@1.0.0',
        required: false,
      },
    ],
    ...serversOnly,
  },
  {
    name: 'schedule',
    description:
      'Run a task here on a schedule: every weekday at 9:00, every 15m, cron 0 9 * * 1-5, in 2 hours…',
    options: [
      {
        type: STRING,
        name: 'when',
        description: 'every 15m | every weekday at 9:00 | cron 0 9 * * 1-5 | at <ISO time> | in 2 hours',
        required: true,
        max_length: 200,
      },
      {
        type: STRING,
        name: 'task',
        description: 'What sandbot should do each time',
        required: true,
        max_length: 4000,
      },
      {
        type: BOOLEAN,
        name: 'new_thread',
        description: 'Start a thread of its own for each run (in a server channel)',
        required: false,
      },
    ],
    ...everywhere,
  },
  {
    name: 'schedules',
    description: 'The schedules here; pause, resume or delete one (whoever made it, or an admin)',
    options: [
      {
        type: STRING,
        name: 'action',
        description: 'What to do (default: list)',
        required: false,
        choices: [
          { name: 'list', value: 'list' },
          { name: 'pause', value: 'pause' },
          { name: 'resume', value: 'resume' },
          { name: 'delete', value: 'delete' },
        ],
      },
      { type: STRING, name: 'id', description: 'The schedule, e.g. s-abc123xyz0', required: false },
    ],
    ...everywhere,
  },
] as const;

export type CommandName = (typeof SLASH_COMMANDS)[number]['name'];

export const ADMIN_COMMANDS: readonly string[] = ['run', 'kill', 'network', 'skill'];
/** Commands that act on the conversation of the thread or DM they are used in. */
export const CONVERSATION_COMMANDS: readonly string[] = [
  'run',
  'status',
  'reset',
  'stop',
  'done',
  'kill',
  'network',
  'skill',
  'schedule',
];

export function isCommandName(name: string): name is CommandName {
  return SLASH_COMMANDS.some((c) => c.name === name);
}
