import type { OutboundEvent } from '../contracts/protocol/outbound.js';

export type Platform = OutboundEvent['platform'];

export interface AdapterHealth {
  ok: boolean;
  detail: string;
}

/** A chat platform's connection in the gateway: it submits inbound messages and delivers outbound events. */
export interface ChatAdapter {
  readonly platform: Platform;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Delivers one event; must be idempotent by `event.id` (a retried turn re-emits the same ids). */
  deliver(event: OutboundEvent): Promise<void>;
  health(): AdapterHealth;
  /** Adds the adapter's own HTTP routes (e.g. Slack's Events API) to the gateway's server. */
  registerRoutes?(http: import('./http-server.js').HttpServer): void;
}

/** What the gateway hands every chat adapter. */
export interface AdapterDeps {
  config: import('../contracts/config/schema.js').Config;
  logger: import('../contracts/log/logger.js').Logger;
  /** Enqueues a validated message (or a `reset` command) for its conversation. */
  submit(
    message: import('../contracts/protocol/inbound.js').InboundMessage,
  ): Promise<import('../shared/queue/inbound-queue.js').SubmitResult>;
  /** `status` and `stop` of a conversation. */
  control: import('../shared/queue/conversation-control.js').ConversationControl;
  /** File bytes in transit: put downloaded attachments, get reply files to upload. */
  blobs: import('../shared/stores/blob-store.js').BlobStore;
  /** The audit log, for access refusals and admin actions (absent: logged only). */
  audit?: import('../shared/audit/audit-log.js').AuditRecorder;
  /** A Redis connection the adapter may use for its own state (progress message ids, dedupe). */
  redis: import('ioredis').Redis;
  /** Posts each part of an outbound event once across retries and gateways, under the platform's keys. */
  deliveryOnce(platform: 'slack' | 'discord'): import('./delivery-once.js').DeliveryOnce;
  /** Tasks: the `tasks` board and `done`. */
  tasks: import('../shared/stores/task-store.js').TaskStore;
  /** Schedules: made, listed, paused, resumed and deleted from chat and the web API. */
  schedules: import('../shared/schedules/schedules.js').Schedules;
  /** Rate limits: one notice per person and window, paced progress edits. */
  throttles: import('./chat-throttles.js').ChatThrottles;
  /** Messages per person and minute, new conversations per hour, open event streams (in Redis). */
  limits: import('./rate-limiter.js').RateLimiter;
  /** Approval requests (request_access): read, decide once, and where each card was posted. */
  approvals: import('../shared/stores/approval-store.js').ApprovalStore;
}

/** Builds the chat adapters the config enables (adapters/index.ts); the CLI hands it to the gateway. */
export type ChatAdapterFactory = (deps: AdapterDeps) => Promise<ChatAdapter[]>;
