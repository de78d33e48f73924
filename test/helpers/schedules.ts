import { expect } from 'vitest';
import type { AuditEvent } from '../../src/contracts/audit/events.js';
import type { Config } from '../../src/contracts/config/schema.js';
import type { ConversationId } from '../../src/contracts/conversation/id.js';
import { AuditJournal } from '../../src/shared/audit/journal.js';
import { parseEvents } from '../../src/shared/audit/summary.js';

/** The web API's schedule calls, answering with status and JSON body. */
export async function api(
  base: string,
  method: 'GET' | 'POST' | 'DELETE',
  path: string,
  body?: unknown,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${base}${path}`, {
    method,
    ...(body === undefined
      ? {}
      : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
  });
  const text = await response.text();
  return { status: response.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

/** Creates a schedule through the web API and returns its id (the answer must be 201). */
export async function createSchedule(base: string, body: Record<string, unknown>): Promise<string> {
  const created = await api(base, 'POST', '/api/schedules', body);
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  return String(created.body.id);
}

export interface ListedSchedule {
  id: string;
  conversation: string;
  text: string;
  cron?: string;
  every?: string;
  at?: string;
  next: string | null;
  last: { at: string; outcome: string; turnId?: string } | null;
  paused: boolean;
}

export async function listSchedules(base: string, conversation: string): Promise<ListedSchedule[]> {
  const listed = await api(base, 'GET', `/api/schedules?conversation=${conversation}`);
  expect(listed.status).toBe(200);
  return listed.body.schedules as ListedSchedule[];
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A conversation's audit events of one kind, as written to its file. */
export async function auditOf(
  config: Pick<Config, 'SANDBOT_AUDIT_DIR' | 'SANDBOT_INSTANCE'>,
  conversation: ConversationId,
  kind: AuditEvent['kind'],
): Promise<AuditEvent[]> {
  const journal = new AuditJournal(config.SANDBOT_AUDIT_DIR, config.SANDBOT_INSTANCE);
  return parseEvents((await journal.read(conversation)) ?? '').filter((e) => e.kind === kind);
}
