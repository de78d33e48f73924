import { z } from 'zod';
import { ConversationId } from '../conversation/id.js';

/**
 * An audit event: what happened in a conversation, in which turn, done by whom. Events are hash-chained
 * per conversation (see chain.ts), so a missing or edited event shows.
 */

/** Who did it: a chat user, the agent, a worker, the gateway, an operator, or the egress proxy. */
export const AuditActor = z
  .string()
  .max(300)
  .regex(
    /^(user:(web|slack|discord):[^\n]{1,200}|agent|worker:[^\s]{1,100}|gateway|admin:[^\n]{1,200}|proxy)$/,
    'an actor is user:<platform>:<id>, agent, worker:<id>, gateway, admin:<who> or proxy',
  );
export type AuditActor = z.infer<typeof AuditActor>;

const count = z.number().int().nonnegative();
const text = (max: number) => z.string().max(max);
const sha256 = z.string().regex(/^[0-9a-f]{64}$/);
const fileData = z.looseObject({
  path: text(4096),
  type: z.enum(['file', 'symlink']),
  size: count,
  /** Absent when the file was too large to hash (then `hashed` is false). */
  sha256: sha256.optional(),
  hashed: z.boolean(),
});

/** Each kind with the schema of its `data` (loose: a kind may carry more detail than listed). */
export const AUDIT_DATA = {
  'message.received': z.looseObject({
    messageId: text(128),
    platform: z.enum(['web', 'slack', 'discord']),
    userName: text(128).optional(),
    chars: count,
    files: z.array(z.object({ name: text(255), size: count })),
    command: z.enum(['reset', 'run', 'done']).optional(),
    /** The text itself, only with SANDBOT_AUDIT_CONTENT=true. */
    text: z.string().optional(),
  }),
  'turn.started': z.looseObject({
    mode: z.enum(['chat', 'run']),
    messages: count,
    users: z.array(text(300)),
  }),
  'turn.finished': z.looseObject({
    outcome: text(50),
    durationMs: count,
    modelCalls: count,
    toolCalls: count,
    error: z.string().optional(),
  }),
  /**
   * A reply sent to the chat (for a sub-agent: to its parent), recorded once it is handed on for
   * delivery: what the user read. Its text is recorded whatever SANDBOT_AUDIT_CONTENT says (it is the
   * agent's act, like a tool call's arguments); cut at REPLY_CHARS, `chars` says how long it was.
   */
  reply: z.looseObject({
    messageId: text(300),
    chars: count,
    text: z.string(),
    files: z.array(z.object({ name: text(255), size: count })),
  }),
  'model.request': z.looseObject({
    requestId: text(64),
    model: text(200),
    messages: count,
    content: z.unknown().optional(),
  }),
  'model.response': z.looseObject({
    requestId: text(64),
    model: text(200),
    ok: z.boolean(),
    durationMs: count,
    promptTokens: count.optional(),
    completionTokens: count.optional(),
    toolCalls: z.array(text(128)),
    error: z.string().optional(),
    content: z.string().optional(),
    /** The fallback model, when it answered instead of `model` (SANDBOT_MODEL_FALLBACK). */
    answeredBy: text(200).optional(),
    /** Why `model` did not answer then: its last error. */
    fallbackReason: z.string().optional(),
  }),
  /** A conversation too long for the model's window: its oldest messages folded into a summary (or left out). */
  'model.context_folded': z.looseObject({
    model: text(200),
    contextTokens: count,
    budgetTokens: count,
    tokensBefore: count,
    tokensAfter: count,
    folded: count,
    kept: count,
    foldedTotal: count,
    omitted: count,
    summarized: z.boolean(),
    summaryChars: count,
    error: z.string().optional(),
    fits: z.boolean(),
  }),
  /** The model asked for a tool call and it goes to the sandbox: on record before it can have effects. */
  'tool.started': z.looseObject({
    name: text(128),
    args: z.record(z.string(), z.unknown()),
  }),
  'tool.call': z.looseObject({
    name: text(128),
    args: z.record(z.string(), z.unknown()),
    /** False when the sandbox never reported a result for this call. */
    reported: z.boolean(),
    /** The call had started when its worker stopped; the turn was taken over and run again. */
    interrupted: z.boolean().optional(),
    ok: z.boolean().optional(),
    result: z.string().optional(),
    truncated: z.boolean().optional(),
  }),
  'file.created': fileData,
  'file.changed': fileData.extend({ previous: z.looseObject({ size: count, sha256: sha256.optional() }) }),
  'file.deleted': fileData,
  'net.request': z.looseObject({
    host: text(255),
    port: z.number().int().min(0).max(65_535),
    allowed: z.boolean(),
    /** The skill whose own proxy credential made the request (absent: the sandbox's credential). */
    skill: z.string().max(40).optional(),
    reason: z.string().optional(),
    bytes: count.optional(),
  }),
  'sandbox.create': z.looseObject({}),
  'sandbox.start': z.looseObject({}),
  'sandbox.stop': z.looseObject({}),
  'sandbox.remove': z.looseObject({}),
  'sandbox.wipe': z.looseObject({}),
  'sandbox.kill': z.looseObject({}),
  'sandbox.quarantine': z.looseObject({}),
  'sandbox.release': z.looseObject({}),
  'policy.change': z.looseObject({ policy: text(200) }),
  'limit.hit': z.looseObject({ limit: text(200) }),
  tripwire: z.looseObject({ name: text(200) }),
  'access.refused': z.looseObject({ reason: z.string() }),
  /** An operator's action that has no event of its own (the console's stop and reset). */
  'admin.action': z.looseObject({ action: text(50), detail: text(500).optional() }),
  /** Its home host changed: a reset while the home was gone, an admin's rehome, or a drain (files copied). */
  'host.rehomed': z.looseObject({ from: text(200), to: text(200), reason: text(50) }),
  /** Tasks (group-channel threads) and sub-agents: made, closed, held in line; delegations to sub-agents. */
  'task.created': z.looseObject({ scope: text(256), owner: text(300), depth: count }),
  'task.closed': z.looseObject({ by: text(300), wiped: z.boolean() }),
  'task.held': z.looseObject({ reason: text(50), position: count }),
  'delegation.started': z.looseObject({
    parent: text(256),
    child: text(256),
    root: text(256),
    requestedBy: text(300),
  }),
  'delegation.finished': z.looseObject({ parent: text(256), child: text(256), outcome: text(50) }),
  'delegation.refused': z.looseObject({ reason: z.string() }),
  /** Schedules: made, run (the run's turn is the event's turnId), skipped, paused, resumed, deleted. */
  'schedule.created': z.looseObject({ schedule: text(20), when: text(300), owner: text(300) }),
  'schedule.run': z.looseObject({ schedule: text(20), occurrence: z.iso.datetime(), outcome: text(50) }),
  'schedule.skipped': z.looseObject({ schedule: text(20), occurrence: z.iso.datetime(), reason: z.string() }),
  'schedule.paused': z.looseObject({ schedule: text(20), reason: z.string() }),
  'schedule.resumed': z.looseObject({ schedule: text(20) }),
  'schedule.deleted': z.looseObject({ schedule: text(20) }),
  /** A vetted skill in a turn: loaded (with its hash), refused (why), or a mount that did not match. */
  skill: z.looseObject({ action: text(50), skill: text(200) }),
  /** The agent asked for more (request_access): the card's id, what and why (its words). */
  'approval.requested': z.looseObject({
    approval: text(60),
    kind: z.enum(['network', 'skill', 'delegate']),
    target: text(260),
    reason: text(1000),
  }),
  /** A request decided (the actor clicked) or expired (actor: the worker); recorded once, by whoever ended it. */
  'approval.decided': z.looseObject({
    approval: text(60),
    kind: z.enum(['network', 'skill', 'delegate']),
    target: text(260),
    status: z.enum(['approved', 'denied', 'expired']),
    scope: z.enum(['conversation', 'hour']).optional(),
    note: text(300).optional(),
  }),
} as const;

export type AuditKind = keyof typeof AUDIT_DATA;
export const AuditKind = z.enum(Object.keys(AUDIT_DATA) as [AuditKind, ...AuditKind[]]);

/** What a caller hands `AuditLog.record`: the event before it is sequenced and chained. */
export type AuditInput = {
  [K in AuditKind]: {
    conversation: ConversationId;
    turnId?: string;
    actor: AuditActor;
    kind: K;
    data: z.input<(typeof AUDIT_DATA)[K]>;
  };
}[AuditKind];

const envelope = {
  conversation: ConversationId,
  turnId: text(300).optional(),
  actor: AuditActor,
};

const AuditEnvelope = z.object({ ...envelope, kind: AuditKind, data: z.unknown() });

/** Checks an input against its kind's schema; the error names the first problem. */
export function parseAuditInput(
  input: unknown,
): { ok: true; value: Omit<AuditBody, 'id' | 'time'> } | { ok: false; error: string } {
  const head = AuditEnvelope.safeParse(input);
  if (!head.success) return { ok: false, error: describe(head.error) };
  const data = AUDIT_DATA[head.data.kind].safeParse(head.data.data);
  if (!data.success) return { ok: false, error: `${head.data.kind} data: ${describe(data.error)}` };
  return { ok: true, value: { ...head.data, data: data.data as Record<string, unknown> } };
}

function describe(error: z.ZodError): string {
  const issue = error.issues[0];
  return issue ? `${issue.path.join('.') || 'event'}: ${issue.message}` : 'invalid';
}

/** An event as queued in Redis, before the writer gives it its place in the chain. */
export const AuditBody = z.object({
  /** Unique id, so a writer that died mid-append is not repeated by the next one. */
  id: z.uuid(),
  time: z.iso.datetime(),
  ...envelope,
  kind: AuditKind,
  data: z.record(z.string(), z.unknown()),
});
export type AuditBody = z.infer<typeof AuditBody>;

/** An event as stored: one JSON line of a conversation's audit file. */
export const AuditEvent = AuditBody.extend({
  seq: z.number().int().positive(),
  prevHash: sha256,
  hash: sha256,
});
export type AuditEvent = z.infer<typeof AuditEvent>;
