import { z } from 'zod';
import { NetworkRules } from '../policy/network-policy.js';
import { SkillRules } from '../policy/skill-rules.js';
import { APPROVAL_SETTINGS } from './approval-settings.js';
import { CHAT_SETTINGS } from './chat-settings.js';
import { MODEL_SETTINGS } from './model-settings.js';
import { SANDBOX_SETTINGS } from './sandbox-settings.js';
import { SCHEDULE_SETTINGS } from './schedule-settings.js';
import { flag, int, list, optionalSecret } from './setting-fields.js';

/**
 * Every setting sandbot reads, from the environment (and `.env`). This schema is the single source of
 * truth: `.env.example` and the README's config table are checked against it by a test. The sandbox and
 * chat settings live in their own files, spread in where they stand in that order.
 */
export const ConfigSchema = z.object({
  SANDBOT_INSTANCE: z
    .string()
    .regex(/^[a-z0-9][a-z0-9-]{0,30}$/, 'lowercase letters, digits and "-", up to 31 characters')
    .default('sandbot')
    .describe('Name of this deployment: prefixes Redis keys, container names and labels.'),
  SANDBOT_REDIS_URL: z
    .string()
    .url()
    .default('redis://127.0.0.1:6379')
    .describe('Redis server (queues, leases).'),
  DOCKER_HOST: z
    .string()
    .optional()
    .describe('Container engine endpoint (unix:///path or tcp://host:port); default: the local socket.'),
  ...SANDBOX_SETTINGS,
  SANDBOT_NETWORK_RULES: NetworkRules.describe(
    'Network grants from config: "<conversation-prefix>=<host>,<host>;…" (prefixes match whole id segments, e.g. slack:T1:C2 or discord:<guild>:<channel>; end one with * for a raw prefix; hosts exact or *.suffix, optional :port). Default: no network.',
  ),
  SANDBOT_EGRESS_PORT: int(0, 65_535)
    .default(3128)
    .describe(
      'Port of the egress proxy on the sandboxes’ network gateway (0: any free port). Where egress is tunnelled (gVisor with --network=none, micro-VM) the proxy takes any free port on the worker’s loopback instead.',
    ),
  SANDBOT_EGRESS_MAX_BYTES: int(1024, 10_737_418_240)
    .default(52_428_800)
    .describe('Bytes one proxied request may move (both directions).'),
  SANDBOT_EGRESS_MAX_SECONDS: int(1, 3600).default(120).describe('Time one proxied request may last.'),
  SANDBOT_EGRESS_MAX_CONNECTIONS: int(1, 10_000)
    .default(32)
    .describe(
      'Requests and tunnels one sandbox may have open through the egress proxy at once (on the bridge also its idle connections); more are refused.',
    ),
  SANDBOT_EGRESS_MAX_LOOKUPS: int(1, 1000)
    .default(8)
    .describe('Name lookups one sandbox’s proxy requests may have pending at once; more are refused.'),
  SANDBOT_TRIPWIRE_EGRESS_REFUSALS: int(1, 10_000)
    .default(5)
    .describe('Refused network requests in one turn that kill and quarantine the sandbox.'),
  SANDBOT_SKILLS_DIR: z
    .string()
    .min(1)
    .default('./data/skills')
    .describe(
      'Where vetted skills live (files, scan reports, approvals, the skills ledger) without SANDBOT_DATABASE_URL; the CLI and workers must then see the same folder. Not used when SANDBOT_DATABASE_URL is set.',
    ),
  SANDBOT_SKILLS: SkillRules.describe(
    'Skills enabled from config: "<conversation-prefix>=<skill>,<skill>@<version>;…" (only approved, unchanged skills load). Default: none.',
  ),
  ...MODEL_SETTINGS,
  SANDBOT_MAX_MODEL_CALLS_PER_TURN: int(1, 1000).default(24).describe('Model requests allowed in one turn.'),
  SANDBOT_MAX_TOKENS_PER_TURN: int(100, 100_000_000)
    .default(200_000)
    .describe('Model tokens (prompt + completion) one turn may use.'),
  SANDBOX_MAX_LIVE: int(1, 100_000)
    .default(50)
    .describe('Running sandboxes per worker; past it idle ones are stopped first, then turns wait.'),
  SANDBOX_WARM_POOL: int(0, 1000)
    .default(0)
    .describe(
      'Sandboxes a worker keeps started ahead for new conversations (each used once, with its own size-capped disks; they count toward SANDBOX_MAX_LIVE). Ignored under SANDBOX_LAYER=microvm with caps on (its caps are made in the guest).',
    ),
  SANDBOT_EPHEMERAL: list.describe(
    'Conversation-id prefixes (whole segments, or ending in *) whose workspace is wiped (not just stopped) when idle, comma-separated.',
  ),
  SANDBOT_WORKER_CONCURRENCY: int(1, 1000)
    .default(16)
    .describe(
      'Conversations one worker runs at once. A turn mostly waits (on the model, or its sandbox starting), so a burst of new conversations is served fastest with many at once: 16 starts 100 on 2 cores in about half the time 4 takes (bench/RESULTS.md).',
    ),
  SANDBOT_TASKS_PER_USER: int(1, 1000)
    .default(2)
    .describe('Tasks (group-channel threads) one person may have running at once; more wait in line.'),
  SANDBOT_TASKS_PER_CHANNEL: int(1, 10_000)
    .default(4)
    .describe('Tasks one channel may have running at once; more wait in line.'),
  SANDBOT_DELEGATE_MAX_DEPTH: int(0, 5)
    .default(1)
    .describe(
      'How deep sub-agents may nest (1: agents may delegate, sub-agents may not; 0: no delegate tool).',
    ),
  SANDBOT_DELEGATE_MAX_FANOUT: int(1, 50)
    .default(3)
    .describe('Sub-agents one agent may start (over the life of its conversation).'),
  SANDBOT_DELEGATE_MAX_SANDBOXES: int(1, 500)
    .default(6)
    .describe('Sub-agent sandboxes one task may use in all, at every depth.'),
  SANDBOT_DELEGATE_MAX_SECONDS: int(10, 86_400)
    .default(480)
    .describe(
      'Wall time of a delegation, sub-agents of sub-agents included; then they are stopped (the parent’s turn limit still applies).',
    ),
  SANDBOT_TURN_LEASE_SECONDS: int(2, 600)
    .default(30)
    .describe(
      'A dead worker’s turn is taken over after this long without a lease renewal, plus as long again (its first worker may only be cut off from Redis and still finish it).',
    ),
  SANDBOT_HOST_GRACE_SECONDS: int(1, 86_400)
    .default(120)
    .describe(
      'A conversation whose home host (the engine its files live on) has had no live worker this long gets a notice in its channel on its next message; its messages wait for the host (or a `reset` to start afresh elsewhere).',
    ),
  SANDBOT_MAX_MESSAGE_CHARS: int(1, 100_000).default(8000).describe('Longest message text accepted.'),
  SANDBOT_USER_MESSAGES_PER_MINUTE: int(0, 100_000)
    .default(20)
    .describe(
      'Messages one person may send per minute, across gateways (more are refused with a notice or 429; 0: no limit).',
    ),
  SANDBOT_USER_CONVERSATIONS_PER_HOUR: int(0, 100_000)
    .default(30)
    .describe('New conversations one person may start per hour, across gateways (0: no limit).'),
  SANDBOT_EVENT_STREAMS_PER_CONVERSATION: int(0, 10_000)
    .default(5)
    .describe('Open web event streams per conversation; more get 429 (0: no limit).'),
  SANDBOT_EVENT_STREAMS_TOTAL: int(0, 1_000_000)
    .default(200)
    .describe('Open web event streams in all, across gateways; more get 429 (0: no limit).'),
  SANDBOT_HTTP_HOST: z
    .string()
    .min(1)
    .default('127.0.0.1')
    .describe(
      'Address the gateway’s HTTP server binds. Any address but loopback needs SANDBOT_API_TOKEN (32+ characters), or the gateway refuses to start.',
    ),
  SANDBOT_HTTP_PORT: int(0, 65_535)
    .default(8787)
    .describe('Port of the gateway’s HTTP server (web chat, API, health).'),
  SANDBOT_HTTP_ALLOWED_HOSTS: list.describe(
    'Host names (Host header) the web chat, /readyz and /metrics answer besides localhost, 127.0.0.1, [::1] and the bind address, comma-separated (DNS-rebinding guard).',
  ),
  SANDBOT_API_TOKEN: optionalSecret.describe(
    'When set, the web API requires "Authorization: Bearer <token>"; /readyz and /metrics too when SANDBOT_HTTP_HOST is not loopback, where it is required (32+ characters, e.g. `openssl rand -hex 32`).',
  ),
  SANDBOT_WEB_CHAT: z
    .enum(['auto', 'on', 'off'])
    .default('auto')
    .describe('Serve the web chat and API: auto = only when no Slack or Discord token is set.'),
  SANDBOT_FILE_MAX_BYTES: int(1024, 104_857_600)
    .default(10_485_760)
    .describe('Largest file taken from a chat attachment or handed back from /workspace/outbox.'),
  ...CHAT_SETTINGS,
  ...SCHEDULE_SETTINGS,
  ...APPROVAL_SETTINGS,
  SANDBOT_AUDIT_DIR: z
    .string()
    .min(1)
    .default('./data/audit')
    .describe(
      'Audit log directory: one hash-chained JSONL file per conversation (never mounted into a sandbox).',
    ),
  SANDBOT_DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\/\S*$/, 'a postgresql://user:password@host:port/database URL')
    .optional()
    .describe(
      'PostgreSQL for the audit log and skills (postgresql://user:password@host:port/database, holds a password): when set, every host and the CLI keep and read the hash-chained audit events there instead of the files in SANDBOT_AUDIT_DIR, and the skills (files, reports, approvals, ledger) instead of SANDBOT_SKILLS_DIR. `bash scripts/setup-postgres.sh` sets one up.',
    ),
  SANDBOT_AUDIT_CONTENT: flag.describe(
    'Also record message texts and model request/response content in the audit log (the replies sent to chat are always recorded).',
  ),
  SANDBOT_AUDIT_RETENTION_DAYS: int(1, 36_500)
    .default(90)
    .describe(
      'Delete a conversation’s audit file (or its rows in SANDBOT_DATABASE_URL) this many days after its last event.',
    ),
  SANDBOT_AUDIT_STREAM_MAX: int(100, 100_000_000)
    .default(100_000)
    .describe('Events kept (about) in the Redis stream for `sandbot audit tail`.'),
  SANDBOT_LOG_LEVEL: z
    .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
    .default('info')
    .describe('Log level.'),
});

export type Config = z.infer<typeof ConfigSchema>;
export const SETTING_NAMES = Object.keys(ConfigSchema.shape) as (keyof Config)[];
