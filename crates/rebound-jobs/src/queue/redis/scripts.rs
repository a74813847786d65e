//! The Lua scripts: each runs atomically inside Redis.
//!
//! Keys of one queue: the stream `S`, its schedule `S:rebound:schedule`
//! (a sorted set of job ids by due time, with their messages in the hash
//! `S:rebound:scheduled`), its dead-letter stream `S:rebound:dead`.
//! Stream entries carry `payload` and the envelope `rebound-job`; entries
//! written by other producers carry whatever fields they chose.

/// Moves due retries from the schedule into the stream, then takes over
/// entries idle past the lease (`XAUTOCLAIM`, which counts a delivery),
/// then reads new entries (`XREADGROUP`). Returns one array per entry:
/// `{entry id, delivery count, field, value, ...}`.
///
/// KEYS: stream, schedule, scheduled. ARGV: group, consumer, now (ms),
/// lease (ms), max.
pub(super) const CLAIM: &str = r#"
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[3], 'LIMIT', 0, 1000)
for _, id in ipairs(due) do
  local env = redis.call('HGET', KEYS[3], 'e:' .. id)
  local payload = redis.call('HGET', KEYS[3], 'p:' .. id)
  if env and payload then
    redis.call('XADD', KEYS[1], '*', 'payload', payload, 'rebound-job', env)
  end
  redis.call('HDEL', KEYS[3], 'e:' .. id, 'p:' .. id)
  redis.call('ZREM', KEYS[2], id)
end
local out = {}
local max = tonumber(ARGV[5])
local taken = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[4], '0-0', 'COUNT', max)
for _, e in ipairs(taken[2]) do
  if e[2] then
    local p = redis.call('XPENDING', KEYS[1], ARGV[1], e[1], e[1], 1)
    local entry = {e[1], tostring(p[1][4])}
    for _, v in ipairs(e[2]) do table.insert(entry, v) end
    table.insert(out, entry)
  end
end
if #out < max then
  local read = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', max - #out, 'STREAMS', KEYS[1], '>')
  if read then
    for _, e in ipairs(read[1][2]) do
      local entry = {e[1], '1'}
      for _, v in ipairs(e[2]) do table.insert(entry, v) end
      table.insert(out, entry)
    end
  end
end
return out
"#;

/// Settles a delivery if the entry is still pending with the delivery
/// count it was claimed with (the fence: a takeover raised it), then
/// writes the job's next message: `ack` nothing, `now` back into the
/// stream, `later` into the schedule, `dead` into the dead-letter stream.
/// Returns 1, or 0 when the lease was lost.
///
/// KEYS: stream, schedule, scheduled, dead. ARGV: group, entry id,
/// delivery count, mode, job id, due (ms), envelope, payload.
pub(super) const SETTLE: &str = r#"
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)
if #p == 0 or tostring(p[1][4]) ~= ARGV[3] then return 0 end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
local mode = ARGV[4]
if mode == 'now' then
  redis.call('XADD', KEYS[1], '*', 'payload', ARGV[8], 'rebound-job', ARGV[7])
elseif mode == 'later' then
  redis.call('ZADD', KEYS[2], ARGV[6], ARGV[5])
  redis.call('HSET', KEYS[3], 'e:' .. ARGV[5], ARGV[7], 'p:' .. ARGV[5], ARGV[8])
elseif mode == 'dead' then
  redis.call('XADD', KEYS[4], '*', 'payload', ARGV[8], 'rebound-job', ARGV[7])
end
return 1
"#;

/// Resets the idle time of a pending entry (the lease heartbeat) if it is
/// still pending with the claimed delivery count. `XCLAIM ... JUSTID` does
/// not count a delivery. Returns 1, or 0 when the lease was lost.
///
/// KEYS: stream. ARGV: group, consumer, entry id, delivery count.
pub(super) const RENEW: &str = r#"
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #p == 0 or tostring(p[1][4]) ~= ARGV[4] then return 0 end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'IDLE', 0, 'JUSTID')
return 1
"#;

/// Enqueues jobs: due ones into the stream, later ones into the schedule.
///
/// KEYS: stream, schedule, scheduled. ARGV: now (ms), then per job: id,
/// due (ms), envelope, payload.
pub(super) const ENQUEUE: &str = r#"
local now = tonumber(ARGV[1])
for i = 2, #ARGV, 4 do
  local id, due, env, payload = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  if tonumber(due) <= now then
    redis.call('XADD', KEYS[1], '*', 'payload', payload, 'rebound-job', env)
  else
    redis.call('ZADD', KEYS[2], due, id)
    redis.call('HSET', KEYS[3], 'e:' .. id, env, 'p:' .. id, payload)
  end
end
return 1
"#;

/// Moves a dead-letter entry back into the stream with a fresh envelope,
/// if it is still there. Returns 1 if it moved.
///
/// KEYS: stream, dead. ARGV: dead entry id, envelope, payload.
pub(super) const REDRIVE: &str = r#"
if redis.call('XDEL', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('XADD', KEYS[1], '*', 'payload', ARGV[3], 'rebound-job', ARGV[2])
return 1
"#;
