"""The Lua scripts of the redis store. They read Redis's own clock (``TIME``), so the clocks of the
gateway replicas never matter, and mirror :func:`truckllm.kit.localstate.gcra` line for line.

Floats leave a script as strings (a Lua number would be truncated to an integer reply).

The cooldown scripts publish what they change (see :mod:`truckllm_store_redis.push`) in the same
call, so that a mark and its push are one round trip, and Redis delivers the push only once the
write is done (a script runs atomically).

Every number read back from Redis is clamped before it is used (a negative ``spent`` or
``reserved``, left by an older version or written by hand, counts as 0), and a budget's
``reserved`` only ever drops by a reservation the hash still holds (field ``r:<request id>``):
after Redis lost its data, a late settlement adds its cost to ``spent`` and releases nothing.
"""

from __future__ import annotations

import hashlib

__all__ = [
    "ADMIT",
    "ADMIT_BATCH",
    "ADMIT_BATCH_SHA",
    "ADMIT_SHA",
    "CANCEL_KEEP",
    "CLEAR_COOLDOWN",
    "MARK_COOLDOWN",
    "PROBE",
    "SETTLE_BUDGETS",
    "SETTLE_RATES",
]

CANCEL_KEEP = 3600
"""Seconds a timed-out request's id stays in the cancelled set (its admit, retried by the client
library after a failover, runs within seconds)."""

_PRELUDE = """
local function fmt(x) return string.format('%.17g', x) end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local eps = 1e-6
local function pos(x)
  x = tonumber(x)
  if x == nil or not (x > 0) or x == math.huge then return 0 end
  return x
end
"""

_ADMIT_BODY = """
-- KEYS: nr rate keys, then nb budget keys, then (with budgets) the cancelled set
--       (all in the {limits} slot)
-- ARGV: nr, nb, keep, request id, then per rate (interval, burst, cost),
--       then per budget (limit, amount, expire_at)
-- returns {1, 0, '', remaining...} or {0, index of the failed check, retry_after or '', remaining}
-- a request whose caller gave up on it (timed out: its id is in the cancelled set) takes nothing
local nr, nb, keep, rid = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
if nb > 0 and redis.call('ZSCORE', KEYS[nr + nb + 1], rid) then return {0, nr + 1, '', '0'} end
local a = 5
local tats, eis, rem, seen = {}, {}, {}, {}
for i = 1, nr do
  local key = KEYS[i]
  local ei, burst, cost = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  a = a + 3
  local tat = seen[key]
  if tat == nil then tat = tonumber(redis.call('HGET', key, 'tat')) end
  if tat == nil or tat < now then tat = now end
  local tau = burst * ei
  local new_tat = tat + cost * ei
  local diff = now - (new_tat - tau)
  if diff < -eps then
    local left = math.floor((now - (tat - tau) + eps) / ei)
    if left < 0 then left = 0 end
    local retry = ''
    if cost <= burst then retry = fmt(-diff) end
    return {0, i, retry, fmt(left)}
  end
  seen[key] = new_tat
  tats[i] = new_tat
  eis[i] = ei
  local left = math.floor((diff + eps) / ei)
  if left < 0 then left = 0 end
  rem[i] = fmt(left)
end
local pending = {}
for j = 1, nb do
  local key = KEYS[nr + j]
  local limit, amount = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  a = a + 3
  local v = redis.call('HMGET', key, 'spent', 'reserved')
  local used = pos(v[1]) + pos(v[2]) + (pending[key] or 0)
  if used + amount > limit + 1e-9 then
    local left = limit - used
    if left < 0 then left = 0 end
    return {0, nr + j, '', fmt(left)}
  end
  pending[key] = (pending[key] or 0) + amount
  rem[nr + j] = fmt(limit - used - amount)
end
for i = 1, nr do
  redis.call('HSET', KEYS[i], 'tat', fmt(tats[i]), 'ei', fmt(eis[i]))
  redis.call('PEXPIRE', KEYS[i], math.ceil((tats[i] - now + keep) * 1000))
end
a = 5 + 3 * nr
for j = 1, nb do
  local key = KEYS[nr + j]
  if tonumber(ARGV[a + 1]) > 0 then
    local reserved = pos(redis.call('HGET', key, 'reserved')) + tonumber(ARGV[a + 1])
    redis.call('HSET', key, 'reserved', fmt(reserved))
    redis.call('HINCRBYFLOAT', key, 'r:' .. rid, ARGV[a + 1])
  end
  local expire_at = tonumber(ARGV[a + 2])
  if expire_at > 0 then redis.call('EXPIREAT', key, expire_at) end
  a = a + 3
end
return {1, 0, '', unpack(rem)}
"""

ADMIT = _PRELUDE + _ADMIT_BODY

ADMIT_SHA = hashlib.sha1(ADMIT.encode()).hexdigest()
"""What EVALSHA is called with (the script is loaded once; EVAL is the fallback on NOSCRIPT)."""

ADMIT_BATCH = (
    _PRELUDE
    + "local function admit(KEYS, ARGV)\n"
    + _ADMIT_BODY
    + """end
-- KEYS: every admit's keys in turn; ARGV: n, then per admit its key count, its argument count and
-- its arguments (as ADMIT's)
-- returns one ADMIT reply per admit, in order (an admit that failed: its error, the rest still run)
local n, ki, ai, out = tonumber(ARGV[1]), 0, 2, {}
for i = 1, n do
  local nk, na = tonumber(ARGV[ai]), tonumber(ARGV[ai + 1])
  local keys, args = {}, {}
  for j = 1, nk do keys[j] = KEYS[ki + j] end
  for j = 1, na do args[j] = ARGV[ai + 1 + j] end
  ki, ai = ki + nk, ai + 2 + na
  local ok, reply = pcall(admit, keys, args)
  if ok then
    out[i] = reply
  elseif type(reply) == 'table' and reply.err then
    out[i] = reply
  else
    out[i] = redis.error_reply(tostring(reply))
  end
end
return out
"""
)
"""Several admits in one call, each exactly as :data:`ADMIT` would take it, one after the other
(a script runs atomically: nothing else runs between them)."""

ADMIT_BATCH_SHA = hashlib.sha1(ADMIT_BATCH.encode()).hexdigest()
"""What EVALSHA is called with for a batch."""

SETTLE_RATES = (
    _PRELUDE
    + """
-- KEYS: rate keys; ARGV: keep, then units to add (negative: give back) per key
local keep = tonumber(ARGV[1])
for i = 1, #KEYS do
  local units = tonumber(ARGV[i + 1])
  local v = redis.call('HMGET', KEYS[i], 'tat', 'ei')
  local ei = tonumber(v[2])
  if ei ~= nil and units ~= 0 then
    local tat = tonumber(v[1]) or now
    if tat < now then tat = now end
    tat = tat + units * ei
    if tat < now then tat = now end
    redis.call('HSET', KEYS[i], 'tat', fmt(tat))
    redis.call('PEXPIRE', KEYS[i], math.ceil((tat - now + keep) * 1000))
  end
end
return 1
"""
)

SETTLE_BUDGETS = (
    _PRELUDE
    + """
-- KEYS: one budget hash, the cancelled set; ARGV: USD to add to spent (>= 0), expire_at (0: none),
--       nc, then nc request ids that timed out (cancelled: their reservation is released if made,
--       and their admit, should it run later, takes nothing), then the request ids whose
--       reservations end
-- a reservation the hash no longer holds (Redis lost it) releases nothing: reserved never drops
-- below what the hash still holds, nor below 0; spent never drops
local key = KEYS[1]
local v = redis.call('HMGET', key, 'spent', 'reserved')
local spent, reserved = pos(v[1]), pos(v[2])
local nc = tonumber(ARGV[3])
if nc > 0 then
  for i = 4, 3 + nc do redis.call('ZADD', KEYS[2], now, ARGV[i]) end
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - CANCEL_KEEP)
  redis.call('PEXPIRE', KEYS[2], CANCEL_KEEP * 1000)
end
for i = 4, #ARGV do
  local field = 'r:' .. ARGV[i]
  local held = redis.call('HGET', key, field)
  if held then
    reserved = reserved - pos(held)
    redis.call('HDEL', key, field)
  end
end
if reserved < 1e-9 then reserved = 0 end
redis.call('HSET', key, 'spent', fmt(spent + pos(ARGV[1])), 'reserved', fmt(reserved))
local expire_at = tonumber(ARGV[2])
if expire_at > 0 then redis.call('EXPIREAT', key, expire_at) end
return 1
"""
).replace("CANCEL_KEEP", str(CANCEL_KEEP))

CLEAR_COOLDOWN = (
    _PRELUDE
    + """
-- KEYS: the until zset, the reason hash; ARGV: member, push channel, push message
-- removes the mark (an operator's enable) and publishes the clear; both keys then expire with
-- the latest mark left
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
redis.call('HDEL', KEYS[2], ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if #last == 2 then
  local at = math.ceil(tonumber(last[2])) + 1
  redis.call('EXPIREAT', KEYS[1], at)
  redis.call('EXPIREAT', KEYS[2], at)
else
  redis.call('DEL', KEYS[2])
end
return 1
"""
)

MARK_COOLDOWN = (
    _PRELUDE
    + """
-- KEYS: the until zset, the reason hash; ARGV: member, until, reason, push channel, push message
-- drops expired marks, extends (never shortens) this one and then publishes the push (a mark that
-- changes nothing is not published); returns 1 if it changed
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
if #expired > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  redis.call('HDEL', KEYS[2], unpack(expired))
end
local current = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]))
local changed = 0
if tonumber(ARGV[2]) > now and (current == nil or tonumber(ARGV[2]) > current) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
  redis.call('PUBLISH', ARGV[4], ARGV[5])
  changed = 1
end
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if #last == 2 then
  local at = math.ceil(tonumber(last[2])) + 1
  redis.call('EXPIREAT', KEYS[1], at)
  redis.call('EXPIREAT', KEYS[2], at)
end
return changed
"""
)


PROBE = "redis.call('PEXPIRE', KEYS[1], 1000) return redis.call('TIME')[1]"
"""What the store's probe runs (``ready()``, and every 250 ms in an outage) on a key that is never
written: a script (``@scripting``), a write (``@write``) on a key under the prefix (the ACL's key
patterns) and Redis's clock (``TIME``), as every admit does; a ``PING`` would pass for an ACL user
who may do none of them. ``PEXPIRE`` on a missing key changes nothing."""
