import { type ConversationId, conversationKey, shortHash } from '../conversation/id.js';

/**
 * Every Redis key sandbot writes, in one place (the Slack and Discord adapters' own are in
 * chat-keys.ts). All live under the instance (SANDBOT_INSTANCE), so deployments and test runs sharing a
 * Redis stay apart. The strings are the data's address: changing one orphans what Redis already holds.
 */

// ── Queues ──────────────────────────────────────────────────────────────────────────────────────────

/** BullMQ's own key prefix; queue names are fixed. */
export const bullPrefix = (instance: string) => `${instance}:bull`;
export const INBOUND_QUEUE = 'inbound';
export const OUTBOUND_QUEUE = 'outbound';
/** Schedules' occurrences: one BullMQ job scheduler per schedule, its jobs consumed by the workers. */
export const SCHEDULE_QUEUE = 'schedules';
/**
 * One inbound queue per host (a Docker engine, by its ID) beside the shared one: a conversation's turns
 * go to a worker on the engine its volumes live on (src/shared/hosts). BullMQ names take no ':'.
 */
export const hostQueue = (host: string) => `inbound-host-${host.replace(/[^A-Za-z0-9_-]/g, '-')}`;

// ── Per conversation: `<instance>:conv:<conversationKey>:…` ──────────────────────────────────────────

/** The keys of one conversation: its queue (conversation store) and the stores kept per conversation. */
export function conversationKeys(instance: string, conversation: ConversationId) {
  const base = `${instance}:conv:${conversationKey(conversation)}`;
  return {
    /** Last sequence number handed out for this conversation. */
    seq: `${base}:seq`,
    /** Messages not yet answered: ZSET score=seq member=messageId. */
    pending: `${base}:pending`,
    /** Message bodies by id (HASH). */
    messages: `${base}:messages`,
    /** Last sequence number whose turn finished. */
    done: `${base}:done`,
    /** The turn being run (JSON), kept until it finishes so a takeover reruns exactly it. */
    inflight: `${base}:inflight`,
    /** The lease token that started the turn in flight: only it may finish that turn. */
    runner: `${base}:runner`,
    /** A new holder's claim on another runner's turn ("token|notBefore ms"): the takeover grace. */
    claim: `${base}:claim`,
    /** Which worker runs this conversation now; expires when that worker stops renewing it. */
    lease: `${base}:lease`,
    /** An admin's network grants (JSON), overriding the config rules. */
    network: `${base}:network`,
    /** Why and by whom the conversation was killed (JSON); no turn runs while it exists. */
    quarantine: `${base}:quarantine`,
    /** An admin's skill enables and disables (JSON), on top of the config rules. */
    skills: `${base}:skills`,
    /** Outbox files last handed back: HASH file name → content hash. */
    outbox: `${base}:outbox`,
    /** The token of the workspace's canary credentials file. */
    canary: `${base}:canary`,
    /** Which turn (or kept snapshot) the workspace is marked as; guards the kept audit baseline. */
    workspaceMark: `${base}:workspace-mark`,
    /** Who started the conversation (`<platform>:<user id>`): the one, with admins, its commands obey. */
    owner: `${base}:owner`,
    /** The oldest history messages a summary stands for in model requests (JSON, context-fold.ts). */
    contextFold: `${base}:context-fold`,
    /** The outage of its home host it was last told about (one notice per outage, src/worker/hosts). */
    hostNotice: `${base}:host-notice`,
  };
}

/** A per-conversation key that names one value (not a family of keys). */
export type ConversationKeyName = keyof ReturnType<typeof conversationKeys>;

/** Marks a message id as taken (SET NX with an expiry), so a redelivered message is queued once. */
export const messageSeenKey = (instance: string, conversation: ConversationId, messageId: string) =>
  `${conversationKeys(instance, conversation).pending}:seen:${shortHash(messageId)}`;

// ── Per instance ────────────────────────────────────────────────────────────────────────────────────

export const instanceKeys = (instance: string) => ({
  /** Conversations that may have work left: the recovery sweep looks here. */
  active: `${instance}:active`,
  /** Last turn end per conversation (ZSET score=ms), for idle stops. */
  lastUsed: `${instance}:sandbox:last-used`,
  /** Pub/sub channel of control messages (stop, kill) from gateways to workers. */
  control: `${instance}:control`,
  /** Worker reports: the sandbox layer each live worker runs under (HASH worker id → JSON). */
  layers: `${instance}:layers`,
  /**
   * Where older versions kept the egress proxy's HMAC key (readable with a gateway's credentials): now
   * each worker keeps its own in memory and deletes this.
   */
  egressSecret: `${instance}:egress:secret`,
  /** Worker reports for the console: each live worker's sandboxes with CPU, memory, disk (HASH worker id → JSON). */
  sandboxes: `${instance}:sandboxes`,
  /** Each worker's host report: its engine's ID and free capacity (HASH worker id → JSON, host-report.ts). */
  hosts: `${instance}:hosts`,
  /** Each conversation's home: the engine its sandbox and volumes live on (HASH conversation → host id). */
  homes: `${instance}:homes`,
  /** Hosts being drained (`sandbot host drain`): new conversations avoid them (SET of host ids). */
  drainingHosts: `${instance}:hosts:draining`,
  /** A warm pool's liveness mark; expires when its worker stops renewing it. */
  poolOwner: (owner: string) => `${instance}:pool-owner:${owner}`,
});

// ── Files in transit ────────────────────────────────────────────────────────────────────────────────

/** File bytes between gateway and worker; a blob's key is its handle, so a key is checked by prefix. */
export const blobKeys = (instance: string) => {
  const prefix = `${instance}:blob:`;
  return { prefix, blob: (id: string) => `${prefix}${id}` };
};

// ── Audit log ───────────────────────────────────────────────────────────────────────────────────────

/** Keys of the audit log; the per-conversation ones only when a conversation is given. */
export function auditKeys(instance: string, conversation?: ConversationId) {
  const base = `${instance}:audit`;
  const conv = conversation === undefined ? '' : `${base}:${conversationKey(conversation)}`;
  return {
    /** Capped stream of every sealed event, for live tailing. */
    stream: `${base}:stream`,
    /** Conversations with queued events (the sweep flushes them if their writer died). */
    dirty: `${base}:dirty`,
    /** Events in arrival order, not yet in the file (LIST of AuditBody JSON). */
    pending: `${conv}:pending`,
    /** Who writes the conversation's file now. */
    lock: `${conv}:lock`,
    /** The last event written (seq, hash): lets `verify` see a file cut short. */
    head: `${conv}:head`,
  };
}

// ── Tasks ───────────────────────────────────────────────────────────────────────────────────────────

/** What a task counts (sub-agents of a parent, sandboxes of a tree, its sequence). */
export type TaskCounter = 'children' | 'subagents' | 'sequence';

export const taskKeys = (instance: string) => {
  /** A task's record, status and notes (HASH), by its conversation. */
  const task = (conversation: string) =>
    `${instance}:task:${conversationKey(conversation as ConversationId)}`;
  return {
    task,
    /** The sub-agents ever started under a top-level task (SET). */
    tree: (root: string) => `${task(root)}:tree`,
    /** One count per task. */
    counter: (conversation: string, what: TaskCounter) => `${task(conversation)}:${what}`,
    /** A channel's top-level tasks (ZSET score=created ms). */
    scope: (scope: string) => `${instance}:tasks:scope:${shortHash(scope)}`,
    /** Top-level tasks with a turn running now (SET), what the fairness limits count. */
    running: `${instance}:tasks:running`,
    /** Tasks held back by a limit (ZSET score=since ms). */
    waiting: `${instance}:tasks:waiting`,
    /** Held while a worker decides an admission, so two never take the last free slot. */
    admitLock: `${instance}:tasks:admit-lock`,
  };
};

// ── Delegation ──────────────────────────────────────────────────────────────────────────────────────

/** A sub-agent's result (JSON), stored by whichever worker ran it for the delegating agent's worker. */
export const delegationResultKey = (instance: string, child: ConversationId) =>
  `${instance}:delegation:${conversationKey(child)}:result`;

// ── Chat skill commands (gateway asks, a worker answers from its skills folder) ──────────────────────

export const skillCommandKeys = {
  /** Requests waiting for a worker (LIST). */
  requests: (instance: string) => `${instance}:skills:requests`,
  /** One request's answer (LIST of one), popped by the gateway that asked. */
  reply: (instance: string, id: string) => `${instance}:skills:reply:${id}`,
};

// ── Host commands (`sandbot host drain` asks a host's workers; src/shared/hosts/host-commands.ts) ──────

export const hostCommandKeys = {
  /** Commands waiting for a worker of one host (LIST): move a conversation here, free one's files. */
  requests: (instance: string, host: string) => `${instance}:hosts:commands:${shortHash(host)}`,
  /** One command's answer (LIST of one), popped by the CLI that asked. */
  reply: (instance: string, id: string) => `${instance}:hosts:reply:${id}`,
};

// ── Rate limits (the gateway's RateLimiter) ─────────────────────────────────────────────────────────

/** Sliding windows per person (`<platform>:<user id>`, hashed) and the open event streams. */
export const limitKeys = (instance: string) => {
  const base = `${instance}:limit`;
  return {
    /** Messages taken in the last minute (ZSET score=ms member=message id). */
    messages: (person: string) => `${base}:messages:${shortHash(person)}`,
    /** Conversations started in the last hour (ZSET score=ms member=conversation). */
    conversations: (person: string) => `${base}:conversations:${shortHash(person)}`,
    /** Someone refused by a limit was told so (SET NX until the wait is over): one notice, not a flood. */
    noticed: (person: string, limit: string) => `${base}:noticed:${limit}:${shortHash(person)}`,
    /** A conversation's open web event streams (ZSET score=expiry ms member=stream id). */
    streams: (conversation: ConversationId) => `${base}:streams:${conversationKey(conversation)}`,
    /** Every open web event stream (ZSET score=expiry ms member=stream id). */
    allStreams: `${base}:streams`,
  };
};

// ── Model server gate (fair use of one model server across workers) ───────────────────────────────────

/** One model server's slots, by its URL (hashed): holders and the line of those waiting for one. */
export const modelGateKeys = (instance: string, serverUrl: string) => {
  const base = `${instance}:model-gate:${shortHash(serverUrl)}`;
  return {
    /** Requests holding a slot (ZSET score=lease expiry ms member=ticket). */
    holders: `${base}:holders`,
    /** The line, in order of arrival (ZSET score=sequence member=ticket). */
    queue: `${base}:queue`,
    /** Those in line, by when they count as gone unless they ask again (ZSET score=expiry ms). */
    waiters: `${base}:waiters`,
    /** Last sequence number handed out (orders the line; never expires, so order survives idle). */
    seq: `${base}:seq`,
  };
};

// ── Approvals (request_access cards) ────────────────────────────────────────────────────────────────

/** One approval request and the list the asking turn waits on; the instance's pending ones. */
export const approvalKeys = (instance: string) => {
  const base = `${instance}:approval`;
  return {
    /** One request (HASH: record JSON, status, expiresAtMs, decidedBy, decidedByName, decidedAt, scope, note). */
    record: (id: string) => `${base}:${id}`,
    /** Pushed once when the request is decided or expires: the asking turn BLPOPs it (no polling). */
    decided: (id: string) => `${base}:${id}:decided`,
    /** Where each platform posted the request's card (HASH platform → JSON ref), so it can be edited. */
    card: (id: string) => `${base}:${id}:card`,
    /** Requests not yet decided (ZSET score=expiry ms member=id), for the console. */
    pending: `${base}s:pending`,
    /** Grants and allowances an approval gave for one hour (ZSET score=expiry ms member=JSON), per conversation. */
    temporary: (conversation: ConversationId) => `${base}s:temporary:${conversationKey(conversation)}`,
  };
};

// ── Schedules ───────────────────────────────────────────────────────────────────────────────────────

/** Schedules: each one's hash, and the sets that list them by conversation, owner and channel. */
export const scheduleKeys = (instance: string) => {
  const base = `${instance}:schedule`;
  return {
    /** One schedule (HASH: record JSON, paused, pausedReason, failures, last JSON). */
    schedule: (id: string) => `${base}:${id}`,
    /** Every schedule's id (SET), for the workers' check that each has its job scheduler. */
    all: `${base}s`,
    /** The schedules made in a conversation (SET of ids). */
    conversation: (conversation: ConversationId) => `${base}s:conv:${conversationKey(conversation)}`,
    /** A person's schedules (SET), for SANDBOT_SCHEDULES_PER_USER. */
    owner: (person: string) => `${base}s:owner:${shortHash(person)}`,
    /** A channel's schedules (SET), for SANDBOT_SCHEDULES_PER_CHANNEL. */
    channel: (channel: string) => `${base}s:channel:${shortHash(channel)}`,
  };
};

// ── Operator console (src/gateway/console) ───────────────────────────────────────────────────────────

export const consoleKeys = (instance: string) => {
  const base = `${instance}:console`;
  return {
    /** One signed-in operator's session (HASH: name, csrf), by its random id (hashed); expires. */
    session: (id: string) => `${base}:session:${shortHash(id)}`,
    /** Failed sign-ins from one address in the current window (counter with an expiry). */
    failures: (address: string) => `${base}:login-failures:${shortHash(address)}`,
  };
};

// ── Web chat adapter ────────────────────────────────────────────────────────────────────────────────

export const webKeys = {
  /** A conversation's outbound events (STREAM), read live by the browser's event source. */
  events: (instance: string, conversation: ConversationId) =>
    `${instance}:web:events:${conversationKey(conversation)}`,
  /** Marks an event id as delivered, so a redelivered job appends it once. */
  delivered: (instance: string, eventId: string) => `${instance}:web:delivered:${eventId}`,
};
