/**
 * Lua scripts that keep a conversation's messages in order and its turns one at a time across all
 * workers. Each runs atomically in Redis, which is what makes the ordering and hand-over race-free.
 */

/** KEYS: seq pending messages active seen · ARGV: messageId body conversation dedupeSeconds */
export const SUBMIT = `
if redis.call('SET', KEYS[5], '1', 'NX', 'EX', tonumber(ARGV[4])) == false then return -1 end
local s = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], s, ARGV[1])
redis.call('SADD', KEYS[4], ARGV[3])
return s`;

/** KEYS: lease · ARGV: token ttlMs */
export const RENEW = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1`;

/**
 * The turn to run now: the unfinished one if a previous holder died (so a takeover reruns exactly it,
 * with the same turn id and so the same reply idempotency keys), else the next batch of pending messages.
 * KEYS: lease inflight pending done messages · ARGV: token maxBatch conversation
 */
export const NEXT_TURN = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('lease lost') end
local inflight = redis.call('GET', KEYS[2])
if inflight then return inflight end
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
return turn`;

/** KEYS: lease inflight pending done messages · ARGV: token toSeq */
export const COMPLETE_TURN = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local upto = tonumber(ARGV[2])
if upto > tonumber(redis.call('GET', KEYS[4]) or '0') then redis.call('SET', KEYS[4], upto) end
local ids = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', upto)
if #ids > 0 then redis.call('HDEL', KEYS[5], unpack(ids)) end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', upto)
redis.call('DEL', KEYS[2])
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
