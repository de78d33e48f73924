import type { OutboundEvent } from '../protocol/outbound.js';

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
}
