/**
 * Every Lua script sandbot runs in Redis (the chat adapters' delivery claims use DELETE_IF_HELD). Each
 * runs atomically, which is what makes a check and the write it guards race-free across processes.
 */

// ── Conversation queue: messages in order, turns one at a time across all workers ─────────────────────

/** KEYS: seq pending messages active seen · ARGV: messageId body conversation dedupeSeconds */
export const SUBMIT = `
if redis.call('SET', KEYS[5], '1', 'NX', 'EX', tonumber(ARGV[4])) == false then return -1 end
local s = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], s, ARGV[1])
redis.call('SADD', KEYS[4], ARGV[3])
return s`;

/**
 * Keeps the lease. A holder whose lease lapsed (Redis restarted, or was unreachable past the lease) takes
 * it back while nobody else holds it and the turn in flight is still its own (the runner key), so a
 * Redis outage does not turn a running turn into a takeover.
 * KEYS: lease runner · ARGV: token ttlMs
 */
export const RENEW = `
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
  return 1
end
if holder == false and redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]))
  return 1
end
return 0`;

/**
 * The turn to run now: the unfinished one if a previous holder died (so a takeover reruns exactly it,
 * with the same turn id and so the same reply idempotency keys), else the next batch of pending messages.
 * The turn's runner (the token that started it) fences its finish: only that runner completes it. A new
 * lease holder that finds another runner's turn first waits one grace period (the old runner may be
 * alive and finishing it once Redis answers again), then takes it over, naming the runner it replaced.
 * Returns the turn (JSON), or {"wait": ms} while the grace runs.
 * KEYS: lease inflight pending done messages runner claim · ARGV: token maxBatch conversation graceMs
 */
export const NEXT_TURN = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('lease lost') end
local inflight = redis.call('GET', KEYS[2])
if inflight then
  local runner = redis.call('GET', KEYS[6])
  if runner == false or runner == ARGV[1] then
    redis.call('SET', KEYS[6], ARGV[1])
    return inflight
  end
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local grace = tonumber(ARGV[4])
  local claim = redis.call('GET', KEYS[7])
  local claimant, notBefore = nil, 0
  if claim then claimant, notBefore = string.match(claim, '^(.*)|(%d+)$') end
  if claimant ~= ARGV[1] then
    redis.call('SET', KEYS[7], ARGV[1] .. '|' .. (now + grace), 'PX', grace * 4)
    return cjson.encode({ wait = grace })
  end
  if now < tonumber(notBefore) then return cjson.encode({ wait = tonumber(notBefore) - now }) end
  redis.call('SET', KEYS[6], ARGV[1])
  redis.call('DEL', KEYS[7])
  local turn = cjson.decode(inflight)
  turn.takenOverFrom = runner
  return cjson.encode(turn)
end
local done = tonumber(redis.call('GET', KEYS[4]) or '0')
local items = redis.call('ZRANGEBYSCORE', KEYS[3], '(' .. done, '+inf', 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
if #items == 0 then return false end
local bodies = {}
local first, last
for i = 1, #items, 2 do
  local s = tonumber(items[i + 1])
  if not first then first = s end
  last = s
  local body = redis.call('HGET', KEYS[5], items[i])
  if body then bodies[#bodies + 1] = body end
end
local turn = cjson.encode({ turnId = ARGV[3] .. '#' .. first .. '-' .. last, fromSeq = first, toSeq = last, messages = bodies })
redis.call('SET', KEYS[2], turn)
redis.call('SET', KEYS[6], ARGV[1])
return turn`;

/**
 * Finishes the turn in flight: fenced on its runner, not the lease, so a runner whose lease lapsed while
 * Redis was away still records the finish (and nobody reruns it), while one that was taken over cannot.
 * KEYS: lease inflight pending done messages runner claim · ARGV: token toSeq
 */
export const COMPLETE_TURN = `
if redis.call('GET', KEYS[6]) ~= ARGV[1] then return 0 end
local upto = tonumber(ARGV[2])
if upto > tonumber(redis.call('GET', KEYS[4]) or '0') then redis.call('SET', KEYS[4], upto) end
local ids = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', upto)
if #ids > 0 then redis.call('HDEL', KEYS[5], unpack(ids)) end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', upto)
redis.call('DEL', KEYS[2], KEYS[6], KEYS[7])
return 1`;

/**
 * Hands the turn in flight and the lease on without finishing it (it waits in line): the next holder
 * runs it at once, as its own, with no takeover grace.
 * KEYS: lease runner · ARGV: token
 */
export const YIELD_TURN = `
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1`;

/**
 * Gives the conversation up, unless work arrived meanwhile (then the holder keeps the lease and runs it:
 * a submit that saw the lease held relies on this).
 * KEYS: lease pending done inflight active · ARGV: token conversation
 */
export const RELEASE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
if redis.call('EXISTS', KEYS[4]) == 1 then return 0 end
local done = tonumber(redis.call('GET', KEYS[3]) or '0')
if redis.call('ZCOUNT', KEYS[2], '(' .. done, '+inf') > 0 then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[5], ARGV[2])
return 1`;

/**
 * Moves a conversation's home from one host to another only while it is still the first (a reset on a
 * live host, a drain): two movers cannot both win. Returns 1 when moved.
 * KEYS: homes · ARGV: conversation from to
 */
export const MOVE_HOME = `
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1`;

/**
 * Deletes a lock or lease only while it is still the caller's (the token it set), so a holder that
 * outlived its expiry cannot free what another took since. Returns 1 when deleted, else 0.
 * KEYS: lock · ARGV: token
 */
export const DELETE_IF_HELD = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

// ── Audit log ───────────────────────────────────────────────────────────────────────────────────────

/**
 * Takes written events off the conversation's queue and adds them to the live stream, in one step, while
 * the caller still holds the write lock.
 * KEYS: lock pending stream head · ARGV: token taken maxlen seq hash conversation lockMs [kind line]…
 */
export const AUDIT_COMMIT = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
for i = 8, #ARGV, 2 do
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'conversation', ARGV[6], 'kind', ARGV[i], 'event', ARGV[i + 1])
end
redis.call('LTRIM', KEYS[2], tonumber(ARGV[2]), -1)
if ARGV[4] ~= '0' then redis.call('HSET', KEYS[4], 'seq', ARGV[4], 'hash', ARGV[5]) end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[7]))
return 1`;

/**
 * Lets go of the audit write lock only when nothing is queued (a push that saw the lock held relies on this).
 * KEYS: lock pending dirty · ARGV: token conversation
 */
export const AUDIT_RELEASE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
if redis.call('LLEN', KEYS[2]) > 0 then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[3], ARGV[2])
return 1`;

// ── Tasks ───────────────────────────────────────────────────────────────────────────────────────────

/** KEYS: task scopeIndex · ARGV: record status now ttl conversation createdMs indexMax */
export const TASK_CREATE = `
if redis.call('HSETNX', KEYS[1], 'record', ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[2], 'updatedAt', ARGV[3])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
if KEYS[2] ~= '' then
  redis.call('ZADD', KEYS[2], tonumber(ARGV[6]), ARGV[5])
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -tonumber(ARGV[7]) - 1)
  redis.call('EXPIRE', KEYS[2], tonumber(ARGV[4]))
end
return 1`;

/**
 * Applies a transition table atomically; keeps the set of running top-level tasks (what fairness
 * counts) and the waiting line in step with the status.
 * KEYS: task running waiting · ARGV: table now ttl conversation topLevel
 */
export const TASK_APPLY = `
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return false end
local nextStatus = cjson.decode(ARGV[1])[status] or status
if nextStatus ~= status then redis.call('HSET', KEYS[1], 'status', nextStatus, 'updatedAt', ARGV[2]) end
if nextStatus == 'running' then redis.call('HDEL', KEYS[1], 'held') end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
if ARGV[5] == '1' then
  if nextStatus == 'running' then redis.call('SADD', KEYS[2], ARGV[4]) else redis.call('SREM', KEYS[2], ARGV[4]) end
  if nextStatus ~= 'queued' then redis.call('ZREM', KEYS[3], ARGV[4]) end
end
return nextStatus`;

// ── Workspace baseline and canary ───────────────────────────────────────────────────────────────────

/** Sets the workspace mark and returns the one before (SET … GET, which Redis 6.0 lacks). KEYS: mark · ARGV: claim ttl */
export const WORKSPACE_MARK = `local previous = redis.call('GET', KEYS[1])
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) return previous`;

/** Sets the new token only while the workspace is still marked as the keeping turn's. KEYS: mark · ARGV: claim token ttl */
export const WORKSPACE_KEEP_IF_CLAIMED = `if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3]) return 1 end return 0`;

/** The conversation's canary token, or ARGV[1] made its own if it has none (one round trip). KEYS: canary */
export const CANARY_TOKEN = `local token = redis.call('GET', KEYS[1])
  if token then return token end
  redis.call('SET', KEYS[1], ARGV[1]) return ARGV[1]`;

// ── Web chat adapter ────────────────────────────────────────────────────────────────────────────────

/** The stream entry field that holds the event's JSON. */
export const WEB_EVENT_FIELD = 'event';

/**
 * Guard and append in one atomic step: a crash between them can neither lose nor duplicate an event.
 * KEYS: delivered events · ARGV: eventJson deliveredTtl maxLen streamTtl
 */
export const WEB_DELIVER = `
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[2]) then
  local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', '${WEB_EVENT_FIELD}', ARGV[1])
  redis.call('EXPIRE', KEYS[2], ARGV[4])
  return id
end
return false`;

// ── Rate limits ─────────────────────────────────────────────────────────────────────────────────────

/**
 * Admits a message under two sliding windows, or says which is full and its oldest entry's time (ms),
 * from which the wait follows. Refused messages are not counted, so a flood does not prolong the wait;
 * a message id already counted (a redelivery) passes. A conversation is new unless `seq` exists (it
 * took a message before) or it is in the window already. A max of 0 is no limit.
 * KEYS: messages conversations seq · ARGV: now messageWindowMs messageMax messageId
 *   conversationWindowMs conversationMax conversation mode (new: starts one; check: new unless known; old)
 * Returns {1} admitted, {0, 1, oldestMs} too many messages, {0, 2, oldestMs} too many conversations.
 */
export const RATE_ADMIT = `
local now = tonumber(ARGV[1])
local mWindow, mMax = tonumber(ARGV[2]), tonumber(ARGV[3])
local cWindow, cMax = tonumber(ARGV[5]), tonumber(ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - mWindow)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - cWindow)
if redis.call('ZSCORE', KEYS[1], ARGV[4]) then return {1} end
if mMax > 0 and redis.call('ZCARD', KEYS[1]) >= mMax then
  return {0, 1, tonumber(redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2])}
end
local fresh = ARGV[8] == 'new'
if ARGV[8] == 'check' then
  fresh = redis.call('EXISTS', KEYS[3]) == 0 and not redis.call('ZSCORE', KEYS[2], ARGV[7])
end
if fresh and cMax > 0 then
  if redis.call('ZCARD', KEYS[2]) >= cMax then
    return {0, 2, tonumber(redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')[2])}
  end
  redis.call('ZADD', KEYS[2], now, ARGV[7])
  redis.call('PEXPIRE', KEYS[2], cWindow)
end
if mMax > 0 then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], mWindow)
end
return {1}`;

/**
 * Takes a slot for an open event stream under a per-conversation and a total cap. Slots are leases
 * (score = expiry ms), renewed while the stream is open, so a gateway that died frees its slots.
 * KEYS: conversationStreams allStreams · ARGV: now ttlMs id perConversationMax totalMax
 * Returns 0 taken, 1 the conversation's cap is reached, 2 the total cap is reached.
 */
export const STREAM_OPEN = `
local now, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if tonumber(ARGV[4]) > 0 and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 1 end
if tonumber(ARGV[5]) > 0 and redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[5]) then return 2 end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[3])
redis.call('ZADD', KEYS[2], now + ttl, ARGV[3])
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return 0`;

/** Renews a stream's slot while it is open (only if still held). KEYS: conversationStreams allStreams · ARGV: expiryMs ttlMs id */
export const STREAM_RENEW = `
redis.call('ZADD', KEYS[1], 'XX', tonumber(ARGV[1]), ARGV[3])
redis.call('ZADD', KEYS[2], 'XX', tonumber(ARGV[1]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[2]))
return 1`;

// ── Model server gate ──────────────────────────────────────────────────────────────────────────────

/** Redis's own clock in ms: workers' clocks may disagree, a lease expiry must not. */
const NOW_MS = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/**
 * Asks for a slot of a model server, in line: drops holders and waiters whose lease ran out (a worker
 * that died), puts the ticket in line once, and grants a slot when it is among the first in line for
 * the free ones. Asking again renews the waiter's place; a dead waiter's place lapses.
 * KEYS: holders queue waiters seq · ARGV: ticket max ttlMs
 * Returns {1, 0} granted (or already held, then renewed), {0, ahead} waiting behind `ahead` others.
 */
export const MODEL_GATE_ACQUIRE = `
${NOW_MS}
local ttl = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local gone = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
for _, ticket in ipairs(gone) do
  redis.call('ZREM', KEYS[3], ticket)
  redis.call('ZREM', KEYS[2], ticket)
end
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
  return {1, 0}
end
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[4]), ARGV[1])
end
local free = tonumber(ARGV[2]) - redis.call('ZCARD', KEYS[1])
local rank = redis.call('ZRANK', KEYS[2], ARGV[1])
if rank < free then
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ttl * 2)
  return {1, 0}
end
redis.call('ZADD', KEYS[3], now + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[2], ttl * 2)
redis.call('PEXPIRE', KEYS[3], ttl * 2)
return {0, rank}`;

/** Renews a held slot's lease. KEYS: holders · ARGV: ticket ttlMs · Returns 1 still held, 0 lost. */
export const MODEL_GATE_RENEW = `
${NOW_MS}
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
return 1`;

/** Gives a slot back, or leaves the line (a cancelled wait). KEYS: holders queue waiters · ARGV: ticket */
export const MODEL_GATE_LEAVE = `
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1`;

// ── Schedules ───────────────────────────────────────────────────────────────────────────────────────

/**
 * Creates a schedule under the per-person and per-channel caps, atomically (two creates never both take
 * the last place). KEYS: schedule all conversation owner channel · ARGV: id recordJson ownerMax channelMax
 * Returns 0 created, 1 the person's cap is reached, 2 the channel's.
 */
export const SCHEDULE_CREATE = `
if redis.call('SCARD', KEYS[4]) >= tonumber(ARGV[3]) then return 1 end
if redis.call('SCARD', KEYS[5]) >= tonumber(ARGV[4]) then return 2 end
redis.call('HSET', KEYS[1], 'record', ARGV[2], 'paused', '0', 'failures', '0')
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('SADD', KEYS[4], ARGV[1])
redis.call('SADD', KEYS[5], ARGV[1])
return 0`;

/** A run's end: the last run, and failures in a row (reset by a success). KEYS: schedule · ARGV: lastJson failed */
export const SCHEDULE_RUN_END = `
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
redis.call('HSET', KEYS[1], 'last', ARGV[1])
if ARGV[2] == '1' then return redis.call('HINCRBY', KEYS[1], 'failures', 1) end
redis.call('HSET', KEYS[1], 'failures', '0')
return 0`;

// ── Approvals ───────────────────────────────────────────────────────────────────────────────────────

/**
 * Decides an approval request once: the first decision (or the expiry) wins, later ones change nothing.
 * A click that arrives after the request's expiry finds it expired. Wakes the asking turn.
 * KEYS: record decided pending · ARGV: status by byName at scope note nowMs id ttlMs
 * Returns -1 unknown, 0 already decided, 1 decided now, 2 expired (the decision came too late).
 */
export const APPROVAL_DECIDE = `
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return -1 end
if status ~= 'pending' then return 0 end
local result = 1
local fields = {'status', ARGV[1], 'decidedAt', ARGV[4]}
if ARGV[1] ~= 'expired' and tonumber(redis.call('HGET', KEYS[1], 'expiresAtMs')) <= tonumber(ARGV[7]) then
  fields = {'status', 'expired', 'decidedAt', ARGV[4], 'note', 'Expired without a decision: denied'}
  result = 2
else
  if ARGV[2] ~= '' then table.insert(fields, 'decidedBy') table.insert(fields, ARGV[2]) end
  if ARGV[3] ~= '' then table.insert(fields, 'decidedByName') table.insert(fields, ARGV[3]) end
  if ARGV[5] ~= '' then table.insert(fields, 'scope') table.insert(fields, ARGV[5]) end
  if ARGV[6] ~= '' then table.insert(fields, 'note') table.insert(fields, ARGV[6]) end
end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('ZREM', KEYS[3], ARGV[8])
redis.call('RPUSH', KEYS[2], result)
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[9]))
return result`;
